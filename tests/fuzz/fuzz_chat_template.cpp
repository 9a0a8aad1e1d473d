// libFuzzer target: parses arbitrary bytes as a Jinja chat template and renders what parses with
// a fixed conversation (system, user, assistant with a tool call, tool result; tools; flags), under
// small limits. Any input must parse or fail with an error, and render or fail with an error:
// never crash, recurse without bound, hang or exceed the output limit. Errors name the chat
// template.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_chat_template: invariant broken: %s\n", what);
  std::abort();
}

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief. /no_think"},
      {"role": "user", "content": "Weather in Zürich? 中文 😀"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "abcDEF123", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
      {"role": "tool", "tool_call_id": "abcDEF123", "content": {"temperature": 21.5}},
      {"role": "assistant", "content": "  21.5 °C\n"},
      {"role": "user", "content": "Thanks"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "date_string": "05 Mar 2025", "n": null, "x": 3, "f": 2.5, "flag": false
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto tmpl = pareto::tokenizer::ChatTemplate::parse(source);
  if (!tmpl) {
    if (tmpl.error().message.rfind("chat template: ", 0) != 0) fail("parse error message");
    return 0;
  }
  pareto::tokenizer::ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 200000;
  auto out = tmpl->render(context(), limits);
  if (out) {
    if (out->size() > limits.max_output_bytes) fail("output over the limit");
  } else if (out.error().message.rfind("chat template: ", 0) != 0) {
    fail("render error message");
  }
  return 0;
}
