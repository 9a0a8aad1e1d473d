#include "tokenizer/chat_template.h"

#include <limits>

#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_parser.h"

namespace pareto::tokenizer {
namespace {

using jinja::Value;

// A JSON value as the Python object json.loads gives: null -> None, objects -> dicts in the order
// the JSON type keeps, integers beyond int64 -> float.
template <class Json>
Result<Value> from_json(const Json& j, uint32_t depth) {
  if (depth > jinja::kMaxValueDepth) {
    return make_error("chat template: context nested deeper than ", jinja::kMaxValueDepth);
  }
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::number(static_cast<double>(u));
      }
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::number(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::string(j.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      jinja::List items;
      items.reserve(j.size());
      for (const auto& item : j) {
        PARETO_TRY(Value v, from_json(item, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      jinja::Dict d;
      d.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        PARETO_TRY(Value v, from_json(it.value(), depth + 1));
        d.entries.emplace_back(Value::string(it.key()), std::move(v));  // keys are unique
      }
      return Value::dict(std::move(d));
    }
    case nlohmann::json::value_t::binary:
      break;
  }
  return make_error_code(ErrorCode::kUnsupported,
                         "chat template: binary JSON values in the context");
}

template <class Json>
Result<std::string> render_json(const jinja::Program& program, const Json& context,
                                const ChatTemplateLimits& limits) {
  if (!context.is_object()) {
    return make_error("chat template: the context must be a JSON object");
  }
  PARETO_TRY(Value ctx, from_json(context, 0));
  jinja::Evaluator evaluator(program, limits);
  return evaluator.render(ctx);
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  PARETO_TRY(auto program, jinja::parse_program(source));
  return ChatTemplate(std::move(program));
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context,
                                         const ChatTemplateLimits& limits) const {
  return render_json(*program_, context, limits);
}

Result<std::string> ChatTemplate::render(const nlohmann::json& context,
                                         const ChatTemplateLimits& limits) const {
  return render_json(*program_, context, limits);
}

}  // namespace pareto::tokenizer
