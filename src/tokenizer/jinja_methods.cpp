// Python methods of str, dict, list and tuple values, jinja2's loop.cycle, the template globals
// (range, namespace, dict, and HF's raise_exception and strftime_now).
#include <algorithm>
#include <cmath>
#include <ctime>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_params.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {
namespace {

constexpr std::string_view kStrMethods[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill"};
constexpr std::string_view kDictMethods[] = {"clear",      "copy",   "fromkeys", "get",
                                             "items",      "keys",   "pop",      "popitem",
                                             "setdefault", "update", "values"};
constexpr std::string_view kListMethods[] = {"append", "clear",   "copy",   "count",
                                             "extend", "index",   "insert", "pop",
                                             "remove", "reverse", "sort"};
constexpr std::string_view kGlobals[] = {"range",        "namespace", "dict",   "raise_exception",
                                         "strftime_now", "lipsum",    "cycler", "joiner"};

template <size_t N>
bool listed(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Result<std::string> need_str(const Value& v, std::string_view what) {
  if (!v.is_string()) {
    return type_error(cat(what, " must be str, not ", v.type_name()));
  }
  return v.str();
}

int64_t cp_index(const std::string& s, size_t byte_pos) {
  return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, byte_pos)));
}

Result<Dict> make_dict(const Args& args, std::string_view fn) {
  Dict d;
  if (args.pos.size() > 1)
    return type_error(std::string(fn) + "() takes at most 1 positional argument");
  if (!args.pos.empty()) {
    const Value& src = args.pos[0];
    if (src.is_dict()) {
      d = src.dict();
    } else {
      PARETO_TRY(List pairs, iterate(src));
      for (const Value& pair : pairs) {
        PARETO_TRY(List kv, iterate(pair));
        if (kv.size() != 2) return type_error(std::string(fn) + "() needs pairs of key and value");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.kw) d.set(Value::string(k), v);
  return d;
}

Result<Value> split(const std::string& s, const Value& sep, int64_t maxsplit, bool right) {
  List out;
  if (sep.is_none()) {  // runs of whitespace; the rest after maxsplit keeps its whitespace
    std::u32string cps = utf8_decode(s);
    const size_t n = cps.size();
    std::vector<std::pair<size_t, size_t>> words;
    int64_t splits = 0;
    if (!right) {
      size_t i = 0;
      while (true) {
        while (i < n && is_space(cps[i])) ++i;
        if (i == n) break;
        if (maxsplit >= 0 && splits == maxsplit) {
          words.emplace_back(i, n);
          break;
        }
        size_t j = i;
        while (j < n && !is_space(cps[j])) ++j;
        words.emplace_back(i, j);
        ++splits;
        i = j;
      }
    } else {
      size_t e = n;
      while (true) {
        while (e > 0 && is_space(cps[e - 1])) --e;
        if (e == 0) break;
        if (maxsplit >= 0 && splits == maxsplit) {
          words.emplace_back(0, e);
          break;
        }
        size_t b = e;
        while (b > 0 && !is_space(cps[b - 1])) --b;
        words.emplace_back(b, e);
        ++splits;
        e = b;
      }
      std::reverse(words.begin(), words.end());
    }
    for (const auto& [b, e] : words) {
      out.push_back(Value::string(utf8_encode(std::u32string_view(cps).substr(b, e - b))));
    }
    return Value::list(std::move(out));
  }
  PARETO_TRY(std::string sp, need_str(sep, "separator"));
  if (sp.empty()) return make_error("empty separator");
  std::vector<std::string> parts;
  if (!right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(sp, start);
      if (at == std::string::npos) break;
      parts.push_back(s.substr(start, at - start));
      start = at + sp.size();
    }
    parts.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sp.size()) break;
      const size_t at = s.rfind(sp, end - sp.size());
      if (at == std::string::npos) break;
      parts.push_back(s.substr(at + sp.size(), end - at - sp.size()));
      end = at;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  for (std::string& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::list(std::move(out));
}

std::string pad(const std::string& s, int64_t width, char32_t fill, char align) {
  const auto len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  const int64_t total = std::min<int64_t>(width, int64_t{1} << 26) - len;
  int64_t left = align == '<' ? 0 : align == '>' ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) utf8_append(out, fill);
  out += s;
  for (int64_t i = left; i < total; ++i) utf8_append(out, fill);
  return out;
}

Result<Value> str_method(Evaluator& ev, const std::string& s, const std::string& name, Args args) {
  auto bind = [&](std::initializer_list<std::string_view> names) {
    return Params::bind("str." + name, args, names);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    PARETO_TRY(Params p, bind({"chars"}));
    if (p.has(0) && !p[0].is_none()) PARETO_RETURN_IF_ERROR(need_str(p[0], "strip chars"));
    return Value::string(strip_chars(s, p[0], name != "rstrip", name != "lstrip"));
  }
  if (name == "upper") return Value::string(str_upper(s));
  if (name == "lower") return Value::string(str_lower(s));
  if (name == "title") return Value::string(str_title(s));
  if (name == "capitalize") return Value::string(str_capitalize(s));
  if (name == "startswith" || name == "endswith") {
    PARETO_TRY(Params p, bind({"prefix"}));
    List options;
    if (p[0].is_tuple()) {
      options = p[0].items();
    } else {
      options.push_back(p[0]);
    }
    for (const Value& o : options) {
      PARETO_TRY(std::string x, need_str(o, name + " argument"));
      const bool hit = name == "startswith" ? s.compare(0, x.size(), x) == 0
                                            : x.size() <= s.size() &&
                                                  s.compare(s.size() - x.size(), x.size(), x) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit") {
    PARETO_TRY(Params p, bind({"sep", "maxsplit"}));
    const int64_t maxsplit = p.has(1) && p[1].is_integral() ? p[1].as_int() : -1;
    return split(s, p.has(0) ? p[0] : Value::none(), maxsplit, name == "rsplit");
  }
  if (name == "splitlines") {
    PARETO_RETURN_IF_ERROR(bind({}));
    List out;
    for (std::string& line : split_lines(s)) out.push_back(Value::string(std::move(line)));
    return Value::list(std::move(out));
  }
  if (name == "replace") {
    PARETO_TRY(Params p, bind({"old", "new", "count"}));
    PARETO_TRY(std::string from, need_str(p[0], "replace() argument 1"));
    PARETO_TRY(std::string to, need_str(p[1], "replace() argument 2"));
    int64_t count = p.has(2) && p[2].is_integral() ? p[2].as_int() : -1;
    std::string out;
    if (from.empty()) {  // Python inserts `to` around every character
      std::u32string cps = utf8_decode(s);
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (count != 0) {
          out += to;
          --count;
        }
        if (i < cps.size()) utf8_append(out, cps[i]);
        PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
      }
      return Value::string(std::move(out));
    }
    size_t start = 0;
    while (count != 0) {
      const size_t at = s.find(from, start);
      if (at == std::string::npos) break;
      out.append(s, start, at - start);
      out += to;
      PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
      start = at + from.size();
      --count;
    }
    out.append(s, start);
    PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    PARETO_TRY(Params p, bind({"sub"}));
    PARETO_TRY(std::string sub, need_str(p[0], name + "() argument"));
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") return make_error("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(cp_index(s, at));
  }
  if (name == "join") {
    PARETO_TRY(Params p, bind({"iterable"}));
    PARETO_TRY(List items, iterate(p[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return type_error(cat("sequence item ", std::to_string(i), ": expected str instance, ",
                              items[i].type_name(), " found"));
      }
      if (i) out += s;
      out += items[i].str();
      PARETO_RETURN_IF_ERROR(ev.check_size(out.size()));
    }
    return Value::string(std::move(out));
  }
  if (name == "format") {
    PARETO_TRY(std::string out, str_format(s, args, ev.max_output()));
    return Value::string(std::move(out));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    PARETO_TRY(Params p, bind({"width", "fillchar"}));
    if (!p[0].is_integral()) return type_error(name + "() width must be an integer");
    char32_t fill = ' ';
    if (p.has(1)) {
      PARETO_TRY(std::string f, need_str(p[1], "fill character"));
      std::u32string fc = utf8_decode(f);
      if (fc.size() != 1)
        return type_error("the fill character must be exactly one character long");
      fill = fc[0];
    }
    PARETO_RETURN_IF_ERROR(ev.check_size(static_cast<size_t>(
        std::max<int64_t>(0, std::min<int64_t>(p[0].as_int(), int64_t{1} << 40)))));
    return Value::string(pad(s, p[0].as_int(), fill,
                             name == "center"  ? '^'
                             : name == "ljust" ? '<'
                                               : '>'));
  }
  if (name == "zfill") {
    PARETO_TRY(Params p, bind({"width"}));
    if (!p[0].is_integral()) return type_error("zfill() width must be an integer");
    PARETO_RETURN_IF_ERROR(ev.check_size(static_cast<size_t>(
        std::max<int64_t>(0, std::min<int64_t>(p[0].as_int(), int64_t{1} << 40)))));
    const bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
    std::string body = pad(s.substr(sign ? 1 : 0), p[0].as_int() - (sign ? 1 : 0), '0', '>');
    return Value::string(sign ? s.substr(0, 1) + body : body);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    PARETO_TRY(Params p, bind({"affix"}));
    PARETO_TRY(std::string x, need_str(p[0], name + "() argument"));
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
      return Value::string(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && x.size() <= s.size() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value::string(s.substr(0, s.size() - x.size()));
    }
    return Value::string(s);
  }
  if (name.rfind("is", 0) == 0 && (name == "isdigit" || name == "isalpha" || name == "isalnum" ||
                                   name == "isspace" || name == "islower" || name == "isupper")) {
    PARETO_RETURN_IF_ERROR(bind({}));
    Args none;
    if (name == "islower" || name == "isupper")
      return apply_test(ev, name.substr(2), Value::string(s), none).map(Value::boolean);
    std::u32string cps = utf8_decode(s);
    if (cps.empty()) return Value::boolean(false);
    return Value::boolean(std::all_of(cps.begin(), cps.end(), [&](char32_t c) {
      if (name == "isdigit") return is_digit(c);
      if (name == "isalpha") return is_alpha(c);
      if (name == "isalnum") return is_alpha(c) || is_digit(c);
      return is_space(c);
    }));
  }
  return type_error("str." + name + "() is not supported");
}

}  // namespace

bool is_global_function(std::string_view name) {
  return listed(kGlobals, name);
}

bool is_method(const Value& v, std::string_view name) {
  if (v.is_string()) return listed(kStrMethods, name);
  if (v.is_dict()) return listed(kDictMethods, name);
  if (v.is_list()) return listed(kListMethods, name);
  if (v.is_tuple()) return name == "count" || name == "index";
  if (v.is_loop()) return name == "cycle" || name == "changed";
  return false;
}

// Markup's methods: the str ones that return text return Markup, escaping plain str arguments.
Result<Value> markup_method(Evaluator& ev, const Value& self, const std::string& name, Args args) {
  auto esc = [](const Value& x) {
    return x.is_string() && !x.is_markup() ? Value::markup(html_escape(x.str())) : x;
  };
  const bool escapes = name == "replace" || name == "format" || name == "join";
  if (escapes) {
    for (Value& a : args.pos) {
      if (name != "join") {
        a = esc(a);
      } else {
        PARETO_TRY(List items, iterate(a));
        for (Value& item : items) item = esc(item);
        a = Value::list(std::move(items));
      }
    }
    for (auto& [k, a] : args.kw) a = esc(a);
  }
  PARETO_TRY(Value r, str_method(ev, self.str(), name, std::move(args)));
  static constexpr std::string_view kKeep[] = {
      "capitalize", "title",    "lower",    "upper",        "ljust",
      "rjust",      "lstrip",   "rstrip",   "center",       "strip",
      "zfill",      "swapcase", "casefold", "removeprefix", "removesuffix"};
  if (r.is_string() && (escapes || listed(kKeep, name))) return Value::markup(r.str());
  if (r.is_list() && (name == "split" || name == "rsplit" || name == "splitlines")) {
    List items;
    for (const Value& x : r.items()) items.push_back(Value::markup(x.str()));
    return Value::list(std::move(items));
  }
  return r;
}

Result<Value> call_method(Evaluator& ev, const Value& self, const std::string& name, Args args) {
  if (self.is_markup()) return markup_method(ev, self, name, std::move(args));
  if (self.is_string()) return str_method(ev, self.str(), name, std::move(args));
  const std::string type(self.type_name());
  if (self.is_dict()) {
    if (name == "get") {
      PARETO_TRY(Params p, Params::bind("dict.get", args, {"key", "default"}));
      if (const Value* v = self.dict().find(p[0])) return *v;
      return p.has(1) ? p[1] : Value::none();
    }
    if (name == "items" || name == "keys" || name == "values" || name == "copy") {
      PARETO_RETURN_IF_ERROR(Params::bind("dict." + name, args, {}));
      if (name == "copy") return self;
      List out;
      for (const auto& [k, v] : self.dict().entries) {
        out.push_back(name == "items" ? Value::tuple({k, v}) : name == "keys" ? k : v);
      }
      return Value::list(std::move(out));
    }
  } else if (self.is_sequence()) {
    if (name == "count" || name == "index") {
      PARETO_TRY(Params p, Params::bind(type + "." + name, args, {"value"}));
      const List& items = self.items();
      int64_t n = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!equals(items[i], p[0])) continue;
        if (name == "index") return Value::integer(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") return make_error(to_repr(p[0]), " is not in ", type);
      return Value::integer(n);
    }
    if (name == "copy") return self;
  } else if (self.is_loop()) {
    if (name == "cycle") {
      if (args.pos.empty()) return type_error("no items for cycling given");
      return args.pos[self.loop().index % args.pos.size()];
    }
    return type_error("loop." + name + "() is not supported");
  }
  if (is_method(self, name)) {
    return type_error(type + "." + name + "() is not allowed: the template sandbox makes " + type +
                      " objects immutable");
  }
  return type_error("'" + type + "' object has no method '" + name + "'");
}

Result<Value> call_global(Evaluator& ev, const std::string& name, Args args) {
  if (name == "raise_exception") {
    PARETO_TRY(Params p, Params::bind(name, args, {"message"}));
    return ev.raise(to_str(p[0]));
  }
  if (name == "range") {
    if (!args.kw.empty()) return type_error("range() takes no keyword arguments");
    if (args.pos.empty() || args.pos.size() > 3)
      return type_error("range expected 1 to 3 arguments");
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < args.pos.size(); ++i) {
      if (!args.pos[i].is_integral()) {
        return type_error(
            cat("'", args.pos[i].type_name(), "' object cannot be interpreted as an integer"));
      }
    }
    if (args.pos.size() == 1) {
      v[1] = args.pos[0].as_int();
    } else {
      for (size_t i = 0; i < args.pos.size(); ++i) v[i] = args.pos[i].as_int();
    }
    if (v[2] == 0) return make_error("range() arg 3 must not be zero");
    const long double span = (static_cast<long double>(v[1]) - v[0]) / v[2];
    const long double count = span > 0 ? std::ceil(span) : 0;
    if (count > 100000) return make_error("range too big: the sandbox allows at most 100000 items");
    List out;
    for (int64_t i = 0; i < static_cast<int64_t>(count); ++i)
      out.push_back(Value::integer(v[0] + i * v[2]));
    return Value::list(std::move(out));
  }
  if (name == "namespace" || name == "dict") {
    PARETO_TRY(Dict d, make_dict(args, name));
    if (name == "dict") return Value::dict(std::move(d));
    Value ns = ev.new_namespace();
    for (auto& [k, v] : d.entries) {
      if (!k.is_string()) return type_error("namespace attribute names must be strings");
      ns.ns().set(k.str(), std::move(v));
    }
    return ns;
  }
  if (name == "strftime_now") {
    PARETO_TRY(Params p, Params::bind(name, args, {"format"}));
    PARETO_TRY(std::string fmt, need_str(p[0], "strftime_now() format"));
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    for (size_t size = 256; size <= (size_t{1} << 20); size *= 4) {
      std::string buf(size, '\0');
      const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
      if (n > 0 || fmt.empty()) {
        buf.resize(n);
        return Value::string(std::move(buf));
      }
    }
    return Value::string("");
  }
  return type_error(name + "() is not supported");
}

}  // namespace pareto::tokenizer::jinja
