#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {

namespace {

constexpr uint64_t kMaxWeight = UINT32_MAX;

void add_child(const Value& child, uint32_t* depth, uint64_t* weight) {
  *depth = std::max(*depth, child.depth() + 1);
  *weight = std::min(kMaxWeight, *weight + child.weight());
}

}  // namespace

Value Value::list(List items) {
  Value v(Kind::kList);
  uint32_t depth = 1;
  uint64_t weight = 1;
  for (const Value& item : items) add_child(item, &depth, &weight);
  v.depth_ = depth;
  v.weight_ = static_cast<uint32_t>(weight);
  v.p_ = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::tuple(List items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::kTuple;
  return v;
}
Value Value::generator(List items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::kGenerator;
  return v;
}
Value Value::dict(Dict d) {
  Value v(Kind::kDict);
  uint32_t depth = 1;
  uint64_t weight = 1;
  for (const auto& [key, val] : d.entries) {
    add_child(key, &depth, &weight);
    add_child(val, &depth, &weight);
  }
  v.depth_ = depth;
  v.weight_ = static_cast<uint32_t>(weight);
  v.p_ = std::make_shared<const Dict>(std::move(d));
  return v;
}
Value Value::ns(std::shared_ptr<Namespace> n) {
  Value v(Kind::kNamespace);
  v.p_ = std::move(n);
  return v;
}
Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v(Kind::kCallable);
  v.p_ = std::move(c);
  return v;
}
Value Value::loop(std::shared_ptr<const LoopState> l) {
  Value v(Kind::kLoop);
  v.p_ = std::move(l);
  return v;
}

const List& Value::items() const {
  return *static_cast<const List*>(p_.get());
}
std::shared_ptr<const List> Value::items_ptr() const {
  return std::static_pointer_cast<const List>(p_);
}
const Dict& Value::dict() const {
  return *static_cast<const Dict*>(p_.get());
}
Namespace& Value::ns() const {
  return *const_cast<Namespace*>(static_cast<const Namespace*>(p_.get()));
}
const Callable& Value::fn() const {
  return *static_cast<const Callable*>(p_.get());
}
const LoopState& Value::loop() const {
  return *static_cast<const LoopState*>(p_.get());
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0;
    case Kind::kString:
      return !s_.empty();
    case Kind::kList:
    case Kind::kTuple:
      return !items().empty();
    case Kind::kDict:
      return !dict().entries.empty();
    default:
      return true;
  }
}

std::string_view Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kGenerator:
      return "generator";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return fn().kind == Callable::Kind::kMacro ? "Macro" : "builtin_function_or_method";
    case Kind::kLoop:
      return "LoopContext";
  }
  return "object";
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.str() == key) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* Namespace::find(std::string_view name) const {
  for (const auto& [k, v] : attrs) {
    if (k == name) return &v;
  }
  return nullptr;
}

void Namespace::set(const std::string& name, Value value) {
  for (auto& [k, v] : attrs) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  attrs.emplace_back(name, std::move(value));
}

bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone:
      return true;
    case K::kString:
      return a.str() == b.str();
    case K::kList:
    case K::kTuple: {
      const List& x = a.items();
      const List& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals(x[i], y[i])) return false;
      }
      return true;
    }
    case K::kDict: {
      const Dict& x = a.dict();
      const Dict& y = b.dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case K::kNamespace:
      return &a.ns() == &b.ns();
    case K::kCallable:
      return &a.fn() == &b.fn();
    case K::kLoop:
      return &a.loop() == &b.loop();
    default:
      return false;
  }
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // -d.ddde+XX
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::string_view es = sci.substr(e_pos + 1);
  if (!es.empty() && es[0] == '+') es.remove_prefix(1);
  std::from_chars(es.data(), es.data() + es.size(), exp);
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else {
      const auto int_len = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
        out += ".0";
      } else {
        out += digits.substr(0, int_len);
        out += '.';
        out += digits.substr(int_len);
      }
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return out;
}

namespace {

void append_repr_string(std::string& out, std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  out.push_back(quote);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_printable(c)) {
      utf8_append(out, c);
    } else {
      char buf[16];
      if (c <= 0xFF) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else if (c <= 0xFFFF) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    }
  }
  out.push_back(quote);
}

void append_value(std::string& out, const Value& v, bool repr, int depth = 0) {
  using K = Value::Kind;
  // Only namespaces (mutable, so possibly holding themselves) get past the evaluator's bounds on
  // depth and weight; their text is cut off, and the evaluator then refuses it as too long.
  if (depth > 1000 || out.size() > (size_t{1} << 26)) {
    out += "...";
    return;
  }
  switch (v.kind()) {
    case K::kUndefined:
      if (repr) out += "Undefined";
      return;
    case K::kNone:
      out += "None";
      return;
    case K::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case K::kInt:
      out += std::to_string(v.as_int());
      return;
    case K::kFloat:
      out += float_repr(v.as_double());
      return;
    case K::kString:
      if (repr && v.is_markup()) {
        out += "Markup(";
        append_repr_string(out, v.str());
        out += ")";
      } else if (repr) {
        append_repr_string(out, v.str());
      } else {
        out += v.str();
      }
      return;
    case K::kList:
    case K::kTuple: {
      out.push_back(v.is_list() ? '[' : '(');
      const List& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        append_value(out, items[i], true, depth + 1);
      }
      if (v.is_tuple() && items.size() == 1) out.push_back(',');
      out.push_back(v.is_list() ? ']' : ')');
      return;
    }
    case K::kDict: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, val] : v.dict().entries) {
        if (!first) out += ", ";
        first = false;
        append_value(out, k, true, depth + 1);
        out += ": ";
        append_value(out, val, true, depth + 1);
      }
      out.push_back('}');
      return;
    }
    case K::kGenerator:
      out += "<generator object>";
      return;
    case K::kNamespace: {
      out += "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : v.ns().attrs) {
        if (!first) out += ", ";
        first = false;
        append_repr_string(out, k);
        out += ": ";
        append_value(out, val, true, depth + 1);
      }
      out += "}>";
      return;
    }
    case K::kCallable: {
      const Callable& f = v.fn();
      if (f.kind == Callable::Kind::kMacro) {
        out += "<Macro '" + f.name + "'>";
      } else if (f.kind == Callable::Kind::kMethod) {
        out += "<built-in method " + f.name + " of " + std::string(f.self.type_name()) + " object>";
      } else {
        out += "<function " + f.name + ">";
      }
      return;
    }
    case K::kLoop: {
      const LoopState& l = v.loop();
      out += "<LoopContext " + std::to_string(l.index + 1) + "/" + std::to_string(l.items->size()) +
             ">";
      return;
    }
  }
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

void append_str(std::string& out, const Value& v) {
  append_value(out, v, false);
}

std::string to_str(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  append_value(out, v, false);
  return out;
}

std::string to_repr(const Value& v) {
  std::string out;
  append_value(out, v, true);
  return out;
}

}  // namespace pareto::tokenizer::jinja
