// Helpers shared by the builtins: Python-style argument binding and Python's int() / float().
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tokenizer/jinja_builtins.h"

namespace pareto::tokenizer::jinja {

// Call arguments bound to named parameters, as Python binds them: positional ones first, then
// keywords; too many, unknown or repeated arguments are errors (kUnsupported).
class Params {
 public:
  static Result<Params> bind(std::string_view fn, const Args& args,
                             std::initializer_list<std::string_view> names);
  bool has(size_t i) const { return i < given_.size() && given_[i]; }
  // The argument, or Undefined when it was not given.
  const Value& operator[](size_t i) const { return values_[i]; }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
};

// Python's int(v, base) and float(v); nullopt where Python raises ValueError or TypeError.
std::optional<int64_t> python_int(const Value& v, int base);
std::optional<double> python_float(const Value& v);

// str.splitlines()
std::vector<std::string> split_lines(const std::string& s);

// str.strip / lstrip / rstrip: `chars` None or Undefined strips whitespace.
std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right);

}  // namespace pareto::tokenizer::jinja
