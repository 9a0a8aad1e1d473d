// jinja2's filters and tests (jinja2/filters.py, jinja2/tests.py) on interpreter values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_params.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {
namespace {

constexpr std::string_view kFilters[] = {
    "abs",      "attr",     "batch", "capitalize", "center", "count",      "d",
    "default",  "dictsort", "e",     "escape",     "first",  "float",      "forceescape",
    "format",   "indent",   "int",   "items",      "join",   "last",       "length",
    "list",     "lower",    "map",   "max",        "min",    "reject",     "rejectattr",
    "replace",  "reverse",  "round", "safe",       "select", "selectattr", "sort",
    "string",   "sum",      "title", "tojson",     "trim",   "unique",     "upper",
    "wordcount"};
constexpr std::string_view kJinjaOnlyFilters[] = {
    "filesizeformat", "groupby",   "pprint", "random",   "slice",  "striptags",
    "truncate",       "urlencode", "urlize", "wordwrap", "xmlattr"};
constexpr std::string_view kTests[] = {
    "boolean",  "callable", "defined", "divisibleby", "eq",   "equalto",   "==",     "escaped",
    "even",     "false",    "filter",  "float",       "ge",   ">=",        "gt",     "greaterthan",
    ">",        "in",       "integer", "iterable",    "le",   "<=",        "lower",  "lt",
    "lessthan", "<",        "mapping", "ne",          "!=",   "none",      "number", "odd",
    "sameas",   "sequence", "string",  "test",        "true", "undefined", "upper"};

template <size_t N>
bool listed(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Value ignore_case(const Value& v) {
  return v.is_string() ? Value::string(str_lower(v.str())) : v;
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then index 0.
Result<Value> get_path(Evaluator& ev, const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return ev.getitem(item, attribute);
  Value v = item;
  const std::string& path = attribute.str();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    if (digits && part.size() < 18) {
      PARETO_TRY(v, ev.getitem(v, Value::integer(std::atoll(part.c_str()))));
    } else {
      PARETO_TRY(v, ev.getitem(v, Value::string(part)));
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Result<List> sorted_by(Evaluator& ev, List items, const Value& attribute, bool case_sensitive,
                       bool reverse) {
  PARETO_RETURN_IF_ERROR(ev.charge(items.size()));
  std::vector<std::pair<Value, size_t>> keys;
  for (size_t i = 0; i < items.size(); ++i) {
    Value key = items[i];
    if (!attribute.is_none()) {
      PARETO_TRY(key, get_path(ev, items[i], attribute));
    }
    keys.emplace_back(case_sensitive ? key : ignore_case(key), i);
  }
  for (const auto& [key, i] : keys) {
    PARETO_RETURN_IF_ERROR(compare(keys[0].first, key));  // a TypeError, as Python's sort
  }
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& x, const auto& y) {
    auto c = reverse ? compare(y.first, x.first) : compare(x.first, y.first);
    if (!c) return x.first.type_name() < y.first.type_name();
    return *c < 0;
  });
  List out;
  for (const auto& [key, i] : keys) out.push_back(std::move(items[i]));
  return out;
}

Result<Value> python_round(const Value& v, int64_t digits, const std::string& method) {
  if (!v.is_number()) return type_error(cat("round() needs a number, not ", v.type_name()));
  if (method != "common") {
    if (method != "floor" && method != "ceil")
      return make_error("method must be common, ceil or floor");
    const double scale = std::pow(10.0, static_cast<double>(digits));
    const double x = v.as_double() * scale;
    return Value::number((method == "floor" ? std::floor(x) : std::ceil(x)) / scale);
  }
  if (v.is_integral()) {
    if (digits >= 0) return Value::integer(v.as_int());
    if (digits < -18) return Value::integer(0);
    int64_t p = 1;
    for (int64_t i = 0; i < -digits; ++i) p *= 10;
    const int64_t x = v.as_int();
    int64_t q = x / p;
    int64_t r = x % p;
    if (r < 0) {
      r += p;
      q -= 1;
    }
    if (2 * r > p || (2 * r == p && (q % 2 != 0))) ++q;
    return Value::integer(q * p);
  }
  const double x = v.as_double();
  if (!std::isfinite(x) || digits > 340) return Value::number(x);
  if (digits < 0) {
    if (digits < -330) return Value::number(0.0 * x);
    const double p = std::pow(10.0, static_cast<double>(-digits));
    return Value::number(std::nearbyint(x / p) * p);
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(digits), x);
  return Value::number(std::strtod(buf, nullptr));
}

Result<Value> select_or_reject(Evaluator& ev, const Value& v, Args args, bool attr, bool select) {
  if (!v.truthy()) return Value::generator({});  // jinja2 skips a false value without iterating it
  PARETO_TRY(List items, iterate(v));
  Value attribute;
  size_t off = 0;
  if (attr) {
    if (args.pos.empty()) return make_error("missing parameter for attribute name");
    attribute = args.pos[0];
    off = 1;
  }
  std::string test;
  if (args.pos.size() > off) {
    if (!args.pos[off].is_string()) return type_error("a test name must be a string");
    test = args.pos[off].str();
    if (test_support(test) != Support::kSupported) {
      return type_error("test '" + test + "' is not supported");
    }
  }
  Args test_args;
  test_args.pos.assign(
      args.pos.begin() + static_cast<std::ptrdiff_t>(std::min(args.pos.size(), off + 1)),
      args.pos.end());
  test_args.kw = args.kw;
  List out;
  for (Value& item : items) {
    PARETO_RETURN_IF_ERROR(ev.charge(1));
    Value subject = item;
    if (attr) {
      PARETO_TRY(subject, get_path(ev, item, attribute));
    }
    bool r = subject.truthy();
    if (!test.empty()) {
      PARETO_TRY(r, apply_test(ev, test, subject, test_args));
    }
    if (r == select) out.push_back(std::move(item));
  }
  return Value::generator(std::move(out));
}

Result<Value> map_filter(Evaluator& ev, const Value& v, Args args) {
  if (!v.truthy()) return Value::generator({});  // jinja2 skips a false value without iterating it
  PARETO_TRY(List items, iterate(v));
  List out;
  if (args.pos.empty()) {
    PARETO_TRY(Params p, Params::bind("map", args, {"attribute", "default"}));
    if (!p.has(0)) return make_error("map requires a filter argument");
    for (const Value& item : items) {
      PARETO_RETURN_IF_ERROR(ev.charge(1));
      PARETO_TRY(Value x, get_path(ev, item, p[0]));
      if (x.is_undefined() && p.has(1) && !p[1].is_none()) x = p[1];
      out.push_back(std::move(x));
    }
    return Value::generator(std::move(out));
  }
  if (!args.pos[0].is_string()) return type_error("map's filter name must be a string");
  const std::string name = args.pos[0].str();
  if (filter_support(name) != Support::kSupported) {
    return type_error("filter '" + name + "' is not supported");
  }
  args.pos.erase(args.pos.begin());
  for (const Value& item : items) {
    PARETO_RETURN_IF_ERROR(ev.charge(1));
    PARETO_TRY(Value x, apply_filter(ev, name, item, args));
    out.push_back(std::move(x));
  }
  return Value::generator(std::move(out));
}

Result<Value> tojson_filter(Evaluator& ev, const Value& v, Args args) {
  PARETO_TRY(Params p,
             Params::bind("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonOptions o;
  o.max_bytes = ev.max_output();
  o.ensure_ascii = p.has(0) && p[0].truthy();
  if (p.has(1) && !p[1].is_none()) {
    o.has_indent = true;
    if (p[1].is_string()) {
      o.indent = p[1].str();
    } else if (p[1].is_integral()) {
      o.indent.assign(static_cast<size_t>(std::clamp<int64_t>(p[1].as_int(), 0, 1024)), ' ');
    } else {
      return type_error("tojson indent must be an int or a str");
    }
    o.item_sep = ",";
  }
  if (p.has(2) && !p[2].is_none()) {
    if (!p[2].is_sequence() || p[2].items().size() != 2 || !p[2].items()[0].is_string() ||
        !p[2].items()[1].is_string()) {
      return type_error("tojson separators must be a pair of strings");
    }
    o.item_sep = p[2].items()[0].str();
    o.key_sep = p[2].items()[1].str();
  }
  o.sort_keys = p.has(3) && p[3].truthy();
  PARETO_TRY(std::string s, to_json(v, o));
  return Value::string(std::move(s));
}

Result<Value> length_of(const Value& v) {
  if (v.is_string()) return Value::integer(static_cast<int64_t>(utf8_length(v.str())));
  if (v.is_sequence()) return Value::integer(static_cast<int64_t>(v.items().size()));
  if (v.is_dict()) return Value::integer(static_cast<int64_t>(v.dict().entries.size()));
  if (v.is_undefined()) return Value::integer(0);
  return type_error(cat("object of type '", v.type_name(), "' has no len()"));
}

}  // namespace

Support filter_support(std::string_view name) {
  if (listed(kFilters, name)) return Support::kSupported;
  return listed(kJinjaOnlyFilters, name) ? Support::kUnsupported : Support::kUnknown;
}

Support test_support(std::string_view name) {
  return listed(kTests, name) ? Support::kSupported : Support::kUnknown;
}

Result<Value> apply_filter(Evaluator& ev, const std::string& name, const Value& v, Args args) {
  if (name == "default" || name == "d") {
    PARETO_TRY(Params p, Params::bind(name, args, {"default_value", "boolean"}));
    if (v.is_undefined() || (p.has(1) && p[1].truthy() && !v.truthy())) {
      return p.has(0) ? p[0] : Value::string("");
    }
    return v;
  }
  if (name == "tojson") return tojson_filter(ev, v, std::move(args));
  if (name == "map") return map_filter(ev, v, std::move(args));
  if (name == "select" || name == "reject") {
    return select_or_reject(ev, v, std::move(args), false, name == "select");
  }
  if (name == "selectattr" || name == "rejectattr") {
    return select_or_reject(ev, v, std::move(args), true, name == "selectattr");
  }
  if (name == "format") {
    if (!args.pos.empty() && !args.kw.empty()) {
      return make_error("format can't handle positional and keyword arguments at the same time");
    }
    Value fmt_args = Value::tuple(std::move(args.pos));
    if (!args.kw.empty()) {
      Dict d;
      for (auto& [k, x] : args.kw) d.set(Value::string(k), std::move(x));
      fmt_args = Value::dict(std::move(d));
    }
    return binary_op(ev, Op::kMod, v.is_string() ? v : Value::string(to_str(v)), fmt_args);
  }
  // The rest take fixed parameters.
  using Names = std::initializer_list<std::string_view>;
  auto bind = [&](Names names) { return Params::bind(name, args, names); };
  if (name == "length" || name == "count") {
    PARETO_RETURN_IF_ERROR(bind({}));
    return length_of(v);
  }
  if (name == "string") {
    PARETO_RETURN_IF_ERROR(bind({}));
    return v.is_string() ? v : Value::string(to_str(v));
  }
  if (name == "safe") {
    PARETO_RETURN_IF_ERROR(bind({}));
    return v.is_markup() ? v : Value::markup(to_str(v));
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    PARETO_RETURN_IF_ERROR(bind({}));
    if (v.is_markup() && name != "forceescape") return v;
    return Value::markup(html_escape(to_str(v)));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    PARETO_RETURN_IF_ERROR(bind({}));
    const std::string s = to_str(v);
    auto keep = [&](std::string r) {  // Markup's methods return Markup
      return v.is_markup() ? Value::markup(std::move(r)) : Value::string(std::move(r));
    };
    if (name == "upper") return keep(str_upper(s));
    if (name == "lower") return keep(str_lower(s));
    if (name == "capitalize") return keep(str_capitalize(s));
    // jinja2's title: each piece after a run of - whitespace ( { [ < starts upper-case.
    std::string out;
    bool start = true;
    for (char32_t c : utf8_decode(s)) {
      const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
      utf8_append(out, sep ? c : start ? to_upper(c) : to_lower(c));
      start = sep;
    }
    return Value::string(std::move(out));
  }
  if (name == "trim") {
    PARETO_TRY(Params p, bind({"chars"}));
    std::string r = strip_chars(to_str(v), p[0], true, true);
    return v.is_markup() ? Value::markup(std::move(r)) : Value::string(std::move(r));
  }
  if (name == "replace") {
    PARETO_TRY(Params p, bind({"old", "new", "count"}));
    Args m;
    m.pos = {Value::string(to_str(p[0])), Value::string(to_str(p[1]))};
    if (p.has(2) && !p[2].is_none()) m.pos.push_back(p[2]);
    return call_method(ev, Value::string(to_str(v)), "replace", std::move(m));
  }
  if (name == "list") {
    PARETO_RETURN_IF_ERROR(bind({}));
    PARETO_TRY(List items, iterate(v));
    return Value::list(std::move(items));
  }
  if (name == "first" || name == "last") {
    PARETO_RETURN_IF_ERROR(bind({}));
    PARETO_TRY(List items, iterate(v));
    if (name == "last" && v.is_generator())
      return type_error("'generator' object is not reversible");
    if (items.empty()) {
      return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    }
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    PARETO_RETURN_IF_ERROR(bind({}));
    if (v.is_string()) return slice_value(v, Value::none(), Value::none(), Value::integer(-1));
    PARETO_TRY(List items, iterate(v));
    std::reverse(items.begin(), items.end());
    return v.is_generator() || v.is_undefined() ? Value::list(std::move(items))  // list(value)
                                                : Value::generator(std::move(items));
  }
  if (name == "join") {
    PARETO_TRY(Params p, bind({"d", "attribute"}));
    PARETO_TRY(List items, iterate(v));
    const std::string sep = p.has(0) ? to_str(p[0]) : "";
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      Value item = items[i];
      if (p.has(1) && !p[1].is_none()) {
        PARETO_TRY(item, get_path(ev, items[i], p[1]));
      }
      if (i) out += sep;
      append_str(out, item);
      PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
    }
    return Value::string(std::move(out));
  }
  if (name == "items" || name == "dictsort") {
    if (v.is_undefined() && name == "items") return Value::generator({});
    if (!v.is_dict()) return type_error("Can only get item pairs from a mapping.");
    List pairs;
    for (const auto& [k, x] : v.dict().entries) pairs.push_back(Value::tuple({k, x}));
    if (name == "items") {
      PARETO_RETURN_IF_ERROR(bind({}));
      return Value::generator(std::move(pairs));
    }
    PARETO_TRY(Params p, bind({"case_sensitive", "by", "reverse"}));
    const std::string by = p.has(1) ? to_str(p[1]) : "key";
    if (by != "key" && by != "value")
      return make_error("You can only sort by either \"key\" or \"value\"");
    PARETO_TRY(List sorted, sorted_by(ev, std::move(pairs), Value::integer(by == "key" ? 0 : 1),
                                      p.has(0) && p[0].truthy(), p.has(2) && p[2].truthy()));
    return Value::list(std::move(sorted));
  }
  if (name == "sort") {
    PARETO_TRY(Params p, bind({"reverse", "case_sensitive", "attribute"}));
    PARETO_TRY(List items, iterate(v));
    PARETO_TRY(List sorted, sorted_by(ev, std::move(items), p.has(2) ? p[2] : Value::none(),
                                      p.has(1) && p[1].truthy(), p.has(0) && p[0].truthy()));
    return Value::list(std::move(sorted));
  }
  if (name == "unique" || name == "min" || name == "max") {
    PARETO_TRY(Params p, bind({"case_sensitive", "attribute"}));
    PARETO_TRY(List items, iterate(v));
    const bool cs = p.has(0) && p[0].truthy();
    List keys;
    for (const Value& item : items) {
      Value key = item;
      if (p.has(1) && !p[1].is_none()) {
        PARETO_TRY(key, get_path(ev, item, p[1]));
      }
      keys.push_back(cs ? key : ignore_case(key));
    }
    if (name == "unique") {
      List out;
      List seen;
      for (size_t i = 0; i < items.size(); ++i) {
        PARETO_RETURN_IF_ERROR(ev.charge(1 + seen.size() / 16));
        if (std::none_of(seen.begin(), seen.end(),
                         [&](const Value& s) { return equals(s, keys[i]); })) {
          seen.push_back(keys[i]);
          out.push_back(items[i]);
        }
      }
      return Value::generator(std::move(out));
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    for (size_t i = 1; i < items.size(); ++i) {
      PARETO_TRY(int c, compare(keys[i], keys[best]));
      if (name == "min" ? c < 0 : c > 0) best = i;
    }
    return items[best];
  }
  if (name == "sum") {
    PARETO_TRY(Params p, bind({"attribute", "start"}));
    PARETO_TRY(List items, iterate(v));
    Value total = p.has(1) ? p[1] : Value::integer(0);
    for (const Value& item : items) {
      Value x = item;
      if (p.has(0) && !p[0].is_none()) {
        PARETO_TRY(x, get_path(ev, item, p[0]));
      }
      if (total.is_string() || x.is_string()) return type_error("sum() can't sum strings");
      PARETO_TRY(total, binary_op(ev, Op::kAdd, total, x));
    }
    return total;
  }
  if (name == "batch") {
    PARETO_TRY(Params p, bind({"linecount", "fill_with"}));
    if (!p[0].is_integral() || p[0].as_int() <= 0)
      return type_error("batch needs a positive linecount");
    if (p[0].as_int() > int64_t{kMaxValueWeight}) return make_error("batch linecount too large");
    PARETO_TRY(List items, iterate(v));
    const auto n = static_cast<size_t>(p[0].as_int());
    List out;
    for (size_t i = 0; i < items.size(); i += n) {
      List row(items.begin() + static_cast<std::ptrdiff_t>(i),
               items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + n)));
      if (row.size() < n && p.has(1) && !p[1].is_none()) row.resize(n, p[1]);
      out.push_back(Value::list(std::move(row)));
    }
    return Value::generator(std::move(out));
  }
  if (name == "abs") {
    PARETO_RETURN_IF_ERROR(bind({}));
    if (v.is_float()) return Value::number(std::fabs(v.as_double()));
    if (v.is_integral()) return v.as_int() < 0 ? negate(v) : Value::integer(v.as_int());
    return type_error(cat("bad operand type for abs(): '", v.type_name(), "'"));
  }
  if (name == "round") {
    PARETO_TRY(Params p, bind({"precision", "method"}));
    if (p.has(0) && !p[0].is_integral()) return type_error("round precision must be an integer");
    return python_round(v, p.has(0) ? p[0].as_int() : 0, p.has(1) ? to_str(p[1]) : "common");
  }
  if ((name == "int" || name == "float") && v.is_undefined()) return undefined_error(v);
  if (name == "int") {
    PARETO_TRY(Params p, bind({"default", "base"}));
    const int base = p.has(1) && p[1].is_integral() ? static_cast<int>(p[1].as_int()) : 10;
    if (auto i = python_int(v, v.is_string() ? base : 10)) return Value::integer(*i);
    if (auto f = python_float(v); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) {
      return Value::integer(static_cast<int64_t>(*f));  // "42.23"|int is 42
    }
    return p.has(0) ? p[0] : Value::integer(0);
  }
  if (name == "float") {
    PARETO_TRY(Params p, bind({"default"}));
    if (auto f = python_float(v)) return Value::number(*f);
    return p.has(0) ? p[0] : Value::number(0.0);
  }
  if (name == "attr") {
    PARETO_TRY(Params p, bind({"name"}));
    const std::string attr = to_str(p[0]);
    if (v.is_dict() && !is_method(v, attr)) {
      return Value::undefined("'dict object' has no attribute '" + attr + "'");
    }
    return ev.getattr(v, attr);
  }
  if (name == "indent") {
    PARETO_TRY(Params p, bind({"width", "first", "blank"}));
    if (v.is_undefined()) return undefined_error(v);
    if (!v.is_string()) return type_error(cat("indent needs a str, not ", v.type_name()));
    std::string indention(4, ' ');
    if (p.has(0)) {
      indention = p[0].is_string()
                      ? p[0].str()
                      : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                        p[0].is_integral() ? p[0].as_int() : 4, 0, 1024)),
                                    ' ');
    }
    const std::vector<std::string> lines = split_lines(to_str(v) + "\n");
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n";
      if (i > 0 && (!lines[i].empty() || (p.has(2) && p[2].truthy()))) out += indention;
      out += lines[i];
      PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
    }
    if (p.has(1) && p[1].truthy()) out = indention + out;
    return v.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  if (name == "center") {
    PARETO_TRY(Params p, bind({"width"}));
    Args m;
    m.pos.push_back(p.has(0) ? p[0] : Value::integer(80));
    return call_method(ev, v.is_string() ? v : Value::string(to_str(v)), "center", std::move(m));
  }
  if (name == "wordcount") {
    PARETO_RETURN_IF_ERROR(bind({}));
    int64_t words = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(to_str(v))) {
      const bool w = is_alpha(c) || is_digit(c) || c == '_';
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value::integer(words);
  }
  return type_error("unknown filter '" + name + "'");
}

Result<bool> apply_test(Evaluator& ev, const std::string& name, const Value& v, Args args) {
  (void)ev;
  using Names = std::initializer_list<std::string_view>;
  auto bind = [&](Names names) { return Params::bind(name, args, names); };
  if (name == "defined" || name == "undefined") {
    PARETO_RETURN_IF_ERROR(bind({}));
    return v.is_undefined() == (name == "undefined");
  }
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true" || name == "false") return v.is_bool() && v.as_bool() == (name == "true");
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable")
    return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined();
  if (name == "sequence")
    return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable() || v.is_undefined();
  if (name == "escaped") return v.is_markup();
  if (name == "lower" || name == "upper") {
    bool cased = false;
    for (char32_t c : utf8_decode(to_str(v))) {
      if (name == "lower" ? is_upper(c) : is_lower(c)) return false;
      cased = cased || is_cased(c);
    }
    return cased;
  }
  if (name == "filter" || name == "test") {
    PARETO_TRY(Params p, bind({}));
    if (!v.is_string()) return false;
    return name == "filter" ? filter_support(v.str()) != Support::kUnknown
                            : test_support(v.str()) != Support::kUnknown;
  }
  if (name == "odd" || name == "even") {
    PARETO_TRY(Value r, binary_op(ev, Op::kMod, v, Value::integer(2)));
    return equals(r, Value::integer(name == "odd" ? 1 : 0));
  }
  PARETO_TRY(Params p, bind({"other"}));
  const Value& other = p[0];
  if (name == "divisibleby") {
    PARETO_TRY(Value r, binary_op(ev, Op::kMod, v, other));
    return equals(r, Value::integer(0));
  }
  if (name == "sameas") {
    if (v.is_none() || v.is_bool() || v.is_int() || v.is_undefined()) {
      return v.kind() == other.kind() && equals(v, other);
    }
    return false;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "in") return contains(other, v);
  if (v.is_undefined()) return undefined_error(v);
  if (other.is_undefined()) return undefined_error(other);
  PARETO_TRY(int c, compare(v, other));
  if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
  if (name == "le" || name == "<=") return c <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
  if (name == "ge" || name == ">=") return c >= 0;
  return type_error("unknown test '" + name + "'");
}

}  // namespace pareto::tokenizer::jinja
