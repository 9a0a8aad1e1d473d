// Chat templates: the Jinja2 subset that HF tokenizer.chat_template strings use, rendered as
// transformers' apply_chat_template renders them (jinja2 ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks and loopcontrols; globals raise_exception and strftime_now; HF's
// tojson: json.dumps with ensure_ascii=False and the keys in insertion order). The interpreter is
// in jinja_*.{h,cpp}; what it supports is listed in jinja_parser.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace pareto::tokenizer {

namespace jinja {
struct Program;
}

// Bounds on one render; templates come from model files and are not trusted.
struct ChatTemplateLimits {
  size_t max_output_bytes = size_t{16} << 20;  // the rendered text, and any one string built
  uint64_t max_steps = 10'000'000;  // expressions, statements, iterations (~1-2 s in Release)
  int max_depth = 512;              // nested evaluation (expressions, macro calls)
};

// A parsed Jinja chat template (HF tokenizer.chat_template). Render with a context object:
// {"messages": [...], "add_generation_prompt": bool, "bos_token": "...", "eos_token": "...",
//  "tools": [...] (optional), any other variables}. Each key becomes a template variable; HF also
// passes "tools" and "documents" (null when absent), which render() does not add.
class ChatTemplate {
 public:
  // Errors: kUnsupported for a construct outside the supported subset ({% extends %}, an unknown
  // filter or test, ...), naming it and its line:column; kInvalidArgument for a syntax error,
  // naming line:column and what was expected. Nesting deeper than 256 is an error, not a crash.
  static Result<ChatTemplate> parse(std::string_view source);

  // Errors: raise_exception(msg) -> kInvalidArgument with message "chat template: " + msg; a
  // use of an undefined value that jinja2 refuses, or a limit exceeded -> kInvalidArgument;
  // a runtime type error (unknown method, wrong operand types, ...) -> kUnsupported naming it.
  // ordered_json keeps the object keys in the order given, as Python dicts do (tojson prints them
  // in that order); nlohmann::json holds its keys sorted, so tojson prints them sorted.
  Result<std::string> render(const nlohmann::ordered_json& context,
                             const ChatTemplateLimits& limits = {}) const;
  Result<std::string> render(const nlohmann::json& context,
                             const ChatTemplateLimits& limits = {}) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const jinja::Program> program)
      : program_(std::move(program)) {}
  std::shared_ptr<const jinja::Program> program_;  // immutable after parse: render is thread-safe
};

}  // namespace pareto::tokenizer
