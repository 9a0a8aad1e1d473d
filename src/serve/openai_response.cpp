#include "serve/openai_response.h"

namespace pareto::serve {

using nlohmann::json;

std::string_view finish_reason(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
    case StopReason::kContextFull:
      return "length";
    default:
      return "stop";
  }
}

std::string dump_json(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string sse_event(const json& body) {
  return "data: " + dump_json(body) + "\n\n";
}

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
}

namespace {

json header_json(const ResponseHeader& h, bool chunk) {
  const bool chat = h.endpoint == Endpoint::kChatCompletions;
  return {
      {"id", h.id},
      {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
      {"created", h.created},
      {"model", h.model},
      {"system_fingerprint", "pareto"}};
}

}  // namespace

json completion_body(const ResponseHeader& h, const std::vector<ChoiceText>& choices,
                     const Usage& usage) {
  json body = header_json(h, false);
  json list = json::array();
  for (const ChoiceText& c : choices) {
    json choice = {
        {"index", c.index}, {"logprobs", c.logprobs}, {"finish_reason", c.finish_reason}};
    if (h.endpoint == Endpoint::kChatCompletions) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    list.push_back(std::move(choice));
  }
  body["choices"] = std::move(list);
  body["usage"] = usage_json(usage);
  return body;
}

json chunk_body(const ResponseHeader& h, int index, std::string_view text, bool with_role,
                std::optional<std::string_view> finish, bool with_usage_field,
                const json& logprobs) {
  json body = header_json(h, true);
  json choice = {{"index", index}, {"logprobs", logprobs}};
  if (h.endpoint == Endpoint::kChatCompletions) {
    json delta = json::object();
    if (with_role) delta["role"] = "assistant";
    if (!text.empty() || (with_role && !finish)) delta["content"] = std::string(text);
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = std::string(text);
  }
  choice["finish_reason"] = finish ? json(std::string(*finish)) : json(nullptr);
  body["choices"] = json::array({std::move(choice)});
  if (with_usage_field) body["usage"] = nullptr;
  return body;
}

json usage_chunk_body(const ResponseHeader& h, const Usage& usage) {
  json body = header_json(h, true);
  body["choices"] = json::array();
  body["usage"] = usage_json(usage);
  return body;
}

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

ApiError api_error_from(const Error& error) {
  ApiError e;
  e.message = error.message;
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      e.status = 400;
      break;
    case ErrorCode::kContextOverflow:
      e.status = 400;
      e.code = "context_length_exceeded";
      break;
    case ErrorCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      break;
    case ErrorCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "server_busy";
      break;
    case ErrorCode::kCancelled:
      e.status = 499;
      e.type = "cancelled";
      break;
    case ErrorCode::kInternal:
      e.status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

}  // namespace pareto::serve
