// Filters, tests, global functions and methods of the Jinja interpreter.
//
// Filters: abs, attr, batch, capitalize, center, count, d/default, dictsort, e/escape, first,
// float, forceescape, format, indent, int, items, join, last, length, list, lower, map, max, min,
// reject, rejectattr, replace, reverse, round, safe, select, selectattr, sort, string, sum, title,
// tojson (HF's: ensure_ascii, indent, separators, sort_keys), trim, unique, upper, wordcount.
// Tests: boolean, callable, defined, divisibleby, eq/equalto/==, escaped, even, false, filter,
// float, ge/>=, gt/greaterthan/>, in, integer, iterable, le/<=, lower, lt/lessthan/<, mapping,
// ne/!=, none, number, odd, sameas, sequence, string, test, true, undefined, upper.
// map, select, reject, selectattr, rejectattr, unique, batch, items and reverse return a
// generator as in jinja2 (always true, no length, not JSON); safe and escape return Markup.
// Globals: range (a list, at most 100000 items as in jinja2's sandbox), namespace, dict,
// raise_exception, strftime_now (local time).
// Methods: str (capitalize, center, count, endswith, find, format, index, isalnum, isalpha,
// isdigit, islower, isspace, isupper, join, ljust, lower, lstrip, removeprefix, removesuffix,
// replace, rfind, rjust, rsplit, rstrip, split, splitlines, startswith, strip, title, upper,
// zfill), dict (get, items, keys, values), list/tuple (count, index), loop.cycle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "tokenizer/jinja_value.h"

namespace pareto::tokenizer::jinja {

class Evaluator;

enum class Support {
  kSupported,
  kUnsupported,  // jinja2 has it, this interpreter does not
  kUnknown,      // jinja2 does not have it either
};
Support filter_support(std::string_view name);
Support test_support(std::string_view name);

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Errors from builtins carry no position; the evaluator adds it. kUnsupported for type errors
// and what is not implemented, kInvalidArgument for the rest.
inline tl::unexpected<Error> type_error(const std::string& what) {
  return make_error_code(ErrorCode::kUnsupported, what);
}

Result<Value> apply_filter(Evaluator& ev, const std::string& name, const Value& v, Args args);
Result<bool> apply_test(Evaluator& ev, const std::string& name, const Value& v, Args args);
Result<Value> call_global(Evaluator& ev, const std::string& name, Args args);
Result<Value> call_method(Evaluator& ev, const Value& self, const std::string& name, Args args);

bool is_global_function(std::string_view name);
// Whether `name` is a method of `v`'s Python type (so that v.name is that method, as jinja2's
// getattr gives it before any dict key of that name).
bool is_method(const Value& v, std::string_view name);

// Python's json.dumps(v, ensure_ascii=, indent=, separators=, sort_keys=).
struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the text of one level
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // longer output is an error
};
Result<std::string> to_json(const Value& v, const JsonOptions& options);

// Python `%` string formatting (printf-style) and str.format; text longer than max_bytes is an
// error.
Result<std::string> percent_format(const std::string& fmt, const Value& args, size_t max_bytes);
Result<std::string> str_format(const std::string& fmt, const Args& args, size_t max_bytes);

// Python operators shared by the evaluator and the builtins.
Result<int> compare(const Value& a, const Value& b);  // <0, 0, >0; TypeError when unordered
Result<bool> contains(const Value& container, const Value& item);

}  // namespace pareto::tokenizer::jinja
