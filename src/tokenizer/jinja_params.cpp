// Argument binding and Python's int(), float(), str.strip and str.splitlines for the builtins.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "tokenizer/jinja_params.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {

Result<Params> Params::bind(std::string_view fn, const Args& args,
                            std::initializer_list<std::string_view> names) {
  Params p;
  p.values_.resize(names.size());
  p.given_.assign(names.size(), false);
  if (args.pos.size() > names.size()) {
    return type_error(std::string(fn) + "() takes at most " + std::to_string(names.size()) +
                      " argument(s) (" + std::to_string(args.pos.size()) + " given)");
  }
  for (size_t i = 0; i < args.pos.size(); ++i) {
    p.values_[i] = args.pos[i];
    p.given_[i] = true;
  }
  for (const auto& [k, v] : args.kw) {
    auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end()) {
      return type_error(std::string(fn) + "() got an unexpected keyword argument '" + k + "'");
    }
    const auto i = static_cast<size_t>(it - names.begin());
    if (p.given_[i]) return type_error(std::string(fn) + "() got multiple values for '" + k + "'");
    p.values_[i] = v;
    p.given_[i] = true;
  }
  return p;
}

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string cps = utf8_decode(s);
  const bool spaces = !chars.is_string();
  const std::u32string set = spaces ? std::u32string() : utf8_decode(chars.str());
  auto strip = [&](char32_t c) {
    return spaces ? is_space(c) : set.find(c) != std::u32string::npos;
  };
  size_t b = 0;
  size_t e = cps.size();
  while (left && b < e && strip(cps[b])) ++b;
  while (right && e > b && strip(cps[e - 1])) --e;
  return utf8_encode(std::u32string_view(cps).substr(b, e - b));
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::u32string cps = utf8_decode(s);
  std::u32string line;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
        c == 0x2028 || c == 0x2029) {
      if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
      lines.push_back(utf8_encode(line));
      line.clear();
    } else {
      line.push_back(c);
    }
  }
  if (!line.empty()) lines.push_back(utf8_encode(line));
  return lines;
}

std::optional<int64_t> python_int(const Value& v, int base) {
  if (v.is_integral()) return v.as_int();
  if (v.is_float()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  if (!v.is_string() || base == 1 || base < 0 || base > 36) return std::nullopt;
  std::string s = strip_chars(v.str(), Value::none(), true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  auto prefix = [&](char p) { return i + 1 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == p; };
  if ((base == 0 || base == 16) && prefix('x')) {
    base = 16, i += 2;
  } else if ((base == 0 || base == 8) && prefix('o')) {
    base = 8, i += 2;
  } else if ((base == 0 || base == 2) && prefix('b')) {
    base = 2, i += 2;
  } else if (base == 0) {
    base = 10;
    if (i + 1 < s.size() && s[i] == '0' && s.find_first_not_of("0_", i) != std::string::npos) {
      return std::nullopt;  // "010" is invalid with base 0
    }
  }
  uint64_t value = 0;
  bool any = false;
  bool after_prefix = i > 0 && (s[i - 1] | 0x20) >= 'b' && !(s[i - 1] >= '0' && s[i - 1] <= '9');
  for (; i < s.size(); ++i) {
    if (s[i] == '_') {
      if ((!any && !after_prefix) || i + 1 >= s.size() || s[i + 1] == '_') return std::nullopt;
      continue;
    }
    const char c = static_cast<char>(s[i] | 0x20);
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (value > (static_cast<uint64_t>(INT64_MAX) - static_cast<uint64_t>(d)) /
                    static_cast<uint64_t>(base)) {
      return std::nullopt;
    }
    value = value * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    any = true;
  }
  if (!any) return std::nullopt;
  return neg ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
}

std::optional<double> python_float(const Value& v) {
  if (v.is_number()) return v.as_double();
  if (!v.is_string()) return std::nullopt;
  std::string s = strip_chars(v.str(), Value::none(), true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      const bool ok = i > 0 && i + 1 < s.size() &&
                      std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                      std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    clean.push_back(s[i]);
  }
  size_t start = (!clean.empty() && clean[0] == '+') ? 1 : 0;
  if (start < clean.size() && clean[start] == '-' && start == 1) return std::nullopt;
  double d = 0;
  auto res = std::from_chars(clean.data() + start, clean.data() + clean.size(), d);
  if (res.ec == std::errc::result_out_of_range) {
    // Python gives inf for overflow and 0 for underflow; from_chars leaves d unset.
    const bool neg = clean.size() > start && clean[start] == '-';
    const size_t e = clean.find_first_of("eE");
    const bool tiny = e != std::string::npos && clean.size() > e + 1 && clean[e + 1] == '-';
    d = tiny ? 0.0 : HUGE_VAL;
    if (neg) d = -d;
  } else if (res.ec != std::errc() || res.ptr != clean.data() + clean.size() ||
             start == clean.size()) {
    return std::nullopt;
  }
  return d;
}

}  // namespace pareto::tokenizer::jinja
