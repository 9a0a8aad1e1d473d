// Tokenizer of Jinja template source, as jinja2's lexer with trim_blocks and lstrip_blocks:
// text between tags becomes data tokens with the whitespace control already applied ({%- -%}
// strip all whitespace, trim_blocks drops the newline after a block or comment tag,
// lstrip_blocks drops the indentation before one, {%+ +%} keep it); comments disappear;
// {% raw %} sections become data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pareto::tokenizer::jinja {

enum class Tok : uint8_t {
  kData,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the decoded value
  kInt,
  kFloat,
  kOp,  // text holds the operator: + - / // * % ** ~ [ ] ( ) { } == != > >= < <= = . : | , ;
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  uint32_t pos = 0;  // byte offset in the normalized source
  std::string text;
  int64_t ival = 0;
  double fval = 0;
};

// jinja2's preprocessing: \r\n and \r become \n, and one trailing newline is dropped.
std::string normalize_source(std::string_view source);

// Tokens of a normalized source, ending with kEof. Errors (kInvalidArgument) name line:column.
Result<std::vector<Token>> tokenize(const std::string& source);

}  // namespace pareto::tokenizer::jinja
