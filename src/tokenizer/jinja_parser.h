// Parser of the Jinja subset chat templates use, following jinja2's grammar and operator
// precedence (jinja2/parser.py).
//
// Supported: {{ }} output; {# #} comments; whitespace control (- and +) with trim_blocks and
// lstrip_blocks; {% raw %}; if / elif / else; for (tuple targets, `if` filter, else, loop.index,
// index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, cycle());
// break / continue; set (names, tuples, namespace attributes, set blocks with filters); macro
// (defaults, keyword arguments, varargs / kwargs); with; filter blocks; print; {% generation %}
// (HF's extension, rendered as its body). Expressions: literals (str with Python escapes, int,
// float, true/false/none, lists, tuples, dicts), attribute and item access, slices, calls with
// keyword arguments, filters, tests (`is`, `is not`, one argument without parentheses),
// not/and/or, comparisons (chained), in / not in, + - * / // % ** ~, unary -/+, `x if c else y`.
// Filters and tests: see jinja_builtins.h.
//
// Not supported (kUnsupported, naming it and its line:column): extends, include, import, from,
// block, call, autoescape, do, trans, recursive loops, loop.changed, caller, *args / **kwargs in
// calls, \N{...} string escapes; unknown filters and tests (at parse time, or when run inside an
// if or a conditional expression, as jinja2).
//
// Known differences from jinja2 (none matters to the templates tested): integers are 64-bit
// (overflow is an error); range() and dict.items() / keys() / values() return lists (printed as
// lists; jinja2 prints range(0, 3) and dict_items([...])); a generator (x|select, ...) can be
// iterated twice; Python objects print without their address ("<generator object>"); case
// mapping covers Latin, Greek and Cyrillic, str.isdigit ASCII digits; repr() approximates
// str.isprintable; jinja2 folds some constant expressions at compile time with results of its own
// ({{ 0[:1] }} prints nothing there, and is an error here as it is for a variable).
#pragma once

#include <memory>
#include <string_view>

#include "base/result.h"
#include "tokenizer/jinja_ast.h"

namespace pareto::tokenizer::jinja {

// Nesting of statements and expressions beyond this is an error, not a deep recursion.
inline constexpr int kMaxParseDepth = 256;

Result<std::shared_ptr<const Program>> parse_program(std::string_view source);

}  // namespace pareto::tokenizer::jinja
