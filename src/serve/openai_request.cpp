#include "serve/openai_request.h"

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "base/result.h"

namespace pareto::serve {
namespace {

using Json = nlohmann::ordered_json;

std::string type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

tl::unexpected<ApiError> wrong_type(std::string_view field, std::string_view expected,
                                    const Json& got) {
  return bad_request(str_cat("'", field, "' must be ", expected, ", got ", type_name(got)),
                     std::string(field), "invalid_type");
}

tl::unexpected<ApiError> out_of_range(std::string_view field, std::string_view range,
                                      const std::string& got) {
  return bad_request(str_cat("'", field, "' must be ", range, ", got ", got), std::string(field),
                     "invalid_value");
}

// The field's value, or nullptr when absent or null (null means "default" in OpenAI's API).
const Json* field(const Json& object, std::string_view name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::ostringstream os;
  os << v;
  return os.str();
}

// A finite number in [lo, hi].
ApiResult<std::optional<double>> get_number(const Json& object, std::string_view name, double lo,
                                            double hi) {
  const Json* v = field(object, name);
  if (!v) return std::optional<double>{};
  if (!v->is_number()) return wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return out_of_range(name, str_cat("a number in [", lo, ", ", hi, "]"), number_text(x));
  }
  return std::optional<double>{x};
}

// An integer in [lo, hi] (a number with no fraction: 5.0 is 5, 5.5 is refused).
ApiResult<std::optional<int64_t>> get_integer(const Json& object, std::string_view name, int64_t lo,
                                              int64_t hi) {
  const Json* v = field(object, name);
  if (!v) return std::optional<int64_t>{};
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) {
      return out_of_range(name, str_cat("an integer in [", lo, ", ", hi, "]"), std::to_string(u));
    }
    return std::optional<int64_t>{static_cast<int64_t>(u)};
  }
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) {
      return out_of_range(name, str_cat("an integer in [", lo, ", ", hi, "]"), std::to_string(i));
    }
    return std::optional<int64_t>{i};
  }
  if (v->is_number_float()) {
    const double x = v->get<double>();
    if (!std::isfinite(x) || x != std::floor(x) || x < static_cast<double>(lo) ||
        x > static_cast<double>(hi)) {
      return out_of_range(name, str_cat("an integer in [", lo, ", ", hi, "]"), number_text(x));
    }
    return std::optional<int64_t>{static_cast<int64_t>(x)};
  }
  return wrong_type(name, "an integer", *v);
}

ApiResult<std::optional<bool>> get_bool(const Json& object, std::string_view name) {
  const Json* v = field(object, name);
  if (!v) return std::optional<bool>{};
  if (!v->is_boolean()) return wrong_type(name, "a boolean", *v);
  return std::optional<bool>{v->get<bool>()};
}

ApiResult<std::optional<std::string>> get_string(const Json& object, std::string_view name) {
  const Json* v = field(object, name);
  if (!v) return std::optional<std::string>{};
  if (!v->is_string()) return wrong_type(name, "a string", *v);
  return std::optional<std::string>{v->get<std::string>()};
}

#define API_TRY(decl, expr)                                                               \
  auto PARETO_CONCAT(_api_r_, __LINE__) = (expr);                                         \
  if (!PARETO_CONCAT(_api_r_, __LINE__))                                                  \
    return tl::unexpected<ApiError>(std::move(PARETO_CONCAT(_api_r_, __LINE__)).error()); \
  decl = std::move(*PARETO_CONCAT(_api_r_, __LINE__))

ApiResult<std::vector<Prompt>> parse_prompts(const Json& body, int32_t n_vocab) {
  const Json* p = field(body, "prompt");
  if (!p) return bad_request("'prompt' is required", "prompt", "missing_required_parameter");
  std::vector<Prompt> prompts;
  if (p->is_string()) {
    prompts.push_back(Prompt{p->get<std::string>(), {}, false});
  } else if (p->is_array()) {
    if (p->empty()) return bad_request("'prompt' must not be empty", "prompt", "invalid_value");
    const Json& first = p->front();
    if (first.is_number()) {  // one prompt as token ids
      API_TRY(auto tokens, token_array(*p, "prompt", n_vocab));
      prompts.push_back(Prompt{{}, std::move(tokens), true});
    } else {
      for (size_t i = 0; i < p->size(); ++i) {
        const Json& item = (*p)[i];
        if (item.is_string()) {
          prompts.push_back(Prompt{item.get<std::string>(), {}, false});
        } else if (item.is_array()) {
          API_TRY(auto tokens, token_array(item, str_cat("prompt[", i, "]"), n_vocab));
          prompts.push_back(Prompt{{}, std::move(tokens), true});
        } else {
          return wrong_type(str_cat("prompt[", i, "]"), "a string or an array of token ids", item);
        }
      }
    }
  } else {
    return wrong_type("prompt", "a string, an array of strings or an array of token ids", *p);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].is_tokens ? prompts[i].tokens.empty() : prompts[i].text.empty()) {
      return bad_request(
          str_cat("'prompt", prompts.size() > 1 ? str_cat("[", i, "]") : "", "' is empty"),
          "prompt", "invalid_value");
    }
  }
  return prompts;
}

// Chat content: a string, null, or an array of parts of which only {"type": "text"} is served.
ApiResult<std::string> flatten_content(const Json& content, const std::string& where) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return wrong_type(where, "a string or an array of content parts", content);
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string at = str_cat(where, "[", i, "]");
    if (!part.is_object()) return wrong_type(at, "a content part object", part);
    API_TRY(auto type, get_string(part, "type"));
    if (!type) return bad_request(str_cat("'", at, ".type' is required"), at);
    if (*type != "text") {
      return bad_request(
          str_cat("content part type '", *type, "' is not supported (this model reads text only)"),
          at + ".type", "unsupported_content");
    }
    API_TRY(auto part_text, get_string(part, "text"));
    if (!part_text) return bad_request(str_cat("'", at, ".text' is required"), at + ".text");
    if (!text.empty()) text += "\n";
    text += *part_text;
  }
  return text;
}

ApiResult<Json> parse_messages(const Json& body) {
  const Json* m = field(body, "messages");
  if (!m) return bad_request("'messages' is required", "messages", "missing_required_parameter");
  if (!m->is_array()) return wrong_type("messages", "an array of messages", *m);
  if (m->empty()) return bad_request("'messages' must not be empty", "messages", "invalid_value");
  Json out = Json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string at = str_cat("messages[", i, "]");
    if (!msg.is_object()) return wrong_type(at, "a message object", msg);
    API_TRY(auto role, get_string(msg, "role"));
    if (!role) return bad_request(str_cat("'", at, ".role' is required"), at + ".role");
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool" &&
        *role != "developer" && *role != "function") {
      return bad_request(str_cat("'", at, ".role' must be one of system, developer, user, ",
                                 "assistant, tool; got '", *role, "'"),
                         at + ".role", "invalid_value");
    }
    Json copy = msg;
    const auto content = msg.find("content");
    if (content != msg.end()) {
      API_TRY(copy["content"], flatten_content(*content, at + ".content"));
    } else {
      copy["content"] = "";
    }
    // The templates know "system"; OpenAI's newer "developer" role means the same.
    if (*role == "developer") copy["role"] = "system";
    out.push_back(std::move(copy));
  }
  return out;
}

ApiResult<std::vector<std::string>> parse_stop(const Json& body, int max_stop) {
  const Json* s = field(body, "stop");
  std::vector<std::string> stop;
  if (!s) return stop;
  if (s->is_string()) {
    stop.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (size_t i = 0; i < s->size(); ++i) {
      if (!(*s)[i].is_string()) {
        return wrong_type(str_cat("stop[", i, "]"), "a string", (*s)[i]);
      }
      stop.push_back((*s)[i].get<std::string>());
    }
  } else {
    return wrong_type("stop", "a string or an array of strings", *s);
  }
  if (static_cast<int>(stop.size()) > max_stop) {
    return out_of_range("stop", str_cat("at most ", max_stop, " strings"),
                        std::to_string(stop.size()));
  }
  for (const std::string& x : stop) {
    if (x.empty()) return bad_request("'stop' strings must not be empty", "stop", "invalid_value");
  }
  return stop;
}

ApiResult<std::vector<std::pair<int32_t, float>>> parse_logit_bias(const Json& body,
                                                                   int32_t n_vocab) {
  std::vector<std::pair<int32_t, float>> bias;
  const Json* b = field(body, "logit_bias");
  if (!b) return bias;
  if (!b->is_object()) return wrong_type("logit_bias", "an object of token id -> bias", *b);
  for (const auto& [key, value] : b->items()) {
    const std::string at = str_cat("logit_bias.", key);
    int64_t id = -1;
    bool digits = !key.empty() && key.size() <= 10;
    for (char c : key) digits = digits && c >= '0' && c <= '9';
    if (digits) id = std::stoll(key);
    if (id < 0 || id >= n_vocab) {
      return bad_request(
          str_cat("'logit_bias' key '", key, "' must be a token id in [0, ", n_vocab, ")"),
          "logit_bias", "invalid_value");
    }
    if (!value.is_number()) return wrong_type(at, "a number", value);
    const double x = value.get<double>();
    if (!std::isfinite(x) || x < -100 || x > 100) {
      return out_of_range(at, "a number in [-100, 100]", number_text(x));
    }
    bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(x));
  }
  return bias;
}

ApiResult<void> parse_sampling(const Json& body, const RequestLimits& limits, Endpoint endpoint,
                               GenerateParams& p) {
  API_TRY(auto max_tokens, get_integer(body, "max_tokens", 1, 1 << 30));
  API_TRY(auto max_completion, get_integer(body, "max_completion_tokens", 1, 1 << 30));
  if (max_completion) max_tokens = max_completion;
  // Beyond the context's room it is clamped, not refused: generation ends when the context is full
  // (finish_reason "length"). Chat without a limit runs until then; completions default to 16.
  p.max_tokens = max_tokens ? static_cast<int>(*max_tokens)
                            : (endpoint == Endpoint::kCompletions ? limits.default_max_tokens : -1);
  API_TRY(auto temperature, get_number(body, "temperature", 0, 1e6));
  if (temperature) p.temperature = static_cast<float>(*temperature);
  API_TRY(auto top_p, get_number(body, "top_p", 0, 1));
  if (top_p) {
    if (*top_p <= 0) return out_of_range("top_p", "a number in (0, 1]", number_text(*top_p));
    p.top_p = static_cast<float>(*top_p);
  }
  API_TRY(auto top_k, get_integer(body, "top_k", -1, std::numeric_limits<int32_t>::max()));
  if (top_k) p.top_k = *top_k < 0 ? 0 : static_cast<int>(*top_k);
  API_TRY(auto min_p, get_number(body, "min_p", 0, 1));
  if (min_p) p.min_p = static_cast<float>(*min_p);
  API_TRY(auto seed, get_integer(body, "seed", std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max()));
  if (seed) p.seed = static_cast<uint64_t>(*seed);
  API_TRY(auto presence, get_number(body, "presence_penalty", -2, 2));
  if (presence) p.presence_penalty = static_cast<float>(*presence);
  API_TRY(auto frequency, get_number(body, "frequency_penalty", -2, 2));
  if (frequency) p.frequency_penalty = static_cast<float>(*frequency);
  API_TRY(auto repetition, get_number(body, "repetition_penalty", 0, 100));
  if (repetition) {
    if (*repetition <= 0) {
      return out_of_range("repetition_penalty", "a number in (0, 100]", number_text(*repetition));
    }
    p.repeat_penalty = static_cast<float>(*repetition);
  }
  API_TRY(p.logit_bias, parse_logit_bias(body, limits.n_vocab));
  API_TRY(p.stop, parse_stop(body, limits.max_stop_strings));
  API_TRY(auto ignore_eos, get_bool(body, "ignore_eos"));
  if (ignore_eos) p.ignore_eos = *ignore_eos;
  // Pareto's extension: the decoding strategy by name (the engine checks the name).
  API_TRY(auto strategy, get_string(body, "strategy"));
  if (strategy) p.strategy = *strategy;
  // Pareto's extension: a KV budget (the engine checks the policy and parses the budget, "20%").
  API_TRY(auto kv_policy, get_string(body, "kv_policy"));
  if (kv_policy) p.kv_policy = *kv_policy;
  API_TRY(auto kv_budget, get_string(body, "kv_budget"));
  if (kv_budget) p.kv_budget = *kv_budget;
  return {};
}

ApiResult<void> parse_logprobs_and_refuse_unsupported(const Json& body, Endpoint endpoint,
                                                      GenerateParams& params) {
  // logprobs: a boolean for chat (with top_logprobs alternatives), an integer (top-n) for
  // completions.
  if (endpoint == Endpoint::kChatCompletions) {
    API_TRY(auto logprobs, get_bool(body, "logprobs"));
    API_TRY(auto top_logprobs, get_integer(body, "top_logprobs", 0, 20));
    if (top_logprobs && !logprobs.value_or(false)) {
      return bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs", "invalid_value");
    }
    params.logprobs = logprobs.value_or(false) ? static_cast<int>(top_logprobs.value_or(0)) : -1;
  } else {
    API_TRY(auto logprobs, get_integer(body, "logprobs", 0, 20));
    params.logprobs = logprobs ? static_cast<int>(*logprobs) : -1;
  }
  if (const Json* rf = field(body, "response_format")) {
    if (!rf->is_object()) return wrong_type("response_format", "an object", *rf);
    API_TRY(auto type, get_string(*rf, "type"));
    if (type && *type != "text") {
      return bad_request(str_cat("response_format type '", *type,
                                 "' is not supported (constrained decoding is not built yet)"),
                         "response_format", "unsupported_parameter");
    }
  }
  API_TRY(auto echo, get_bool(body, "echo"));
  if (echo && *echo) {
    return bad_request("'echo' is not supported by this server yet", "echo",
                       "unsupported_parameter");
  }
  return {};
}

}  // namespace

ApiResult<std::vector<int32_t>> token_array(const Json& array, std::string_view name,
                                            int32_t n_vocab) {
  std::vector<int32_t> tokens;
  tokens.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const Json& t = array[i];
    if (!t.is_number_integer() && !t.is_number_unsigned()) {
      return wrong_type(str_cat(name, "[", i, "]"), "a token id (integer)", t);
    }
    const bool negative = t.is_number_integer() && t.get<int64_t>() < 0;
    if (negative || (t.is_number_unsigned() && t.get<uint64_t>() >= uint64_t(n_vocab)) ||
        (!t.is_number_unsigned() && t.get<int64_t>() >= n_vocab)) {
      return out_of_range(str_cat(name, "[", i, "]"), str_cat("a token id in [0, ", n_vocab, ")"),
                          t.dump());
    }
    tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return tokens;
}

ApiResult<Json> parse_json_object(std::string_view body) {
  Json parsed = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return bad_request("the request body is not valid JSON (or not valid UTF-8)", "",
                       "invalid_json");
  }
  if (!parsed.is_object()) {
    return bad_request(str_cat("the request body must be a JSON object, got ", type_name(parsed)),
                       "", "invalid_json");
  }
  return parsed;
}

ApiResult<OpenAiRequest> parse_openai_request(Endpoint endpoint, std::string_view body,
                                              const RequestLimits& limits) {
  API_TRY(const Json parsed, parse_json_object(body));
  OpenAiRequest r;
  r.endpoint = endpoint;
  API_TRY(auto model, get_string(parsed, "model"));
  if (model) r.model = *model;
  API_TRY(auto stream, get_bool(parsed, "stream"));
  r.stream = stream.value_or(false);
  if (const Json* so = field(parsed, "stream_options")) {
    if (!so->is_object()) return wrong_type("stream_options", "an object", *so);
    API_TRY(auto usage, get_bool(*so, "include_usage"));
    r.include_usage = usage.value_or(false);
  }
  API_TRY(auto n, get_integer(parsed, "n", 1, limits.max_choices));
  r.n = static_cast<int>(n.value_or(1));
  if (auto refused = parse_logprobs_and_refuse_unsupported(parsed, endpoint, r.params); !refused) {
    return tl::unexpected<ApiError>(refused.error());
  }
  if (auto sampling = parse_sampling(parsed, limits, endpoint, r.params); !sampling) {
    return tl::unexpected<ApiError>(sampling.error());
  }
  if (endpoint == Endpoint::kCompletions) {
    API_TRY(r.prompts, parse_prompts(parsed, limits.n_vocab));
    if (static_cast<int64_t>(r.prompts.size()) * r.n > limits.max_choices) {
      return out_of_range("n",
                          str_cat("at most ", limits.max_choices, " choices in all (prompts x n)"),
                          std::to_string(r.prompts.size() * static_cast<size_t>(r.n)));
    }
  } else {
    API_TRY(r.messages, parse_messages(parsed));
    if (const Json* tools = field(parsed, "tools")) {
      if (!tools->is_array()) return wrong_type("tools", "an array", *tools);
      r.tools = *tools;
    }
    API_TRY(auto add_gen, get_bool(parsed, "add_generation_prompt"));
    r.add_generation_prompt = add_gen.value_or(true);
    r.chat_template_kwargs = Json::object();
    if (const Json* kw = field(parsed, "chat_template_kwargs")) {
      if (!kw->is_object()) return wrong_type("chat_template_kwargs", "an object", *kw);
      r.chat_template_kwargs = *kw;
    }
  }
  return r;
}

}  // namespace pareto::serve
