// Python string formatting: printf-style `fmt % args` (and the format filter) and str.format.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {
namespace {

// Widths and precisions beyond this are refused (Python would build the text, or run out of
// memory).
constexpr int64_t kMaxWidth = int64_t{1} << 20;

Status check_spec(int64_t width, int64_t precision) {
  if (width > kMaxWidth || width < -kMaxWidth || precision > kMaxWidth) {
    return make_error("format width or precision above ", kMaxWidth);
  }
  return ok();
}

struct Spec {
  char fill = ' ';
  char align = 0;  // < > ^ = (0: the type's default)
  char sign = '-';
  bool alt = false;
  int64_t width = -1;
  int64_t precision = -1;
  char type = 0;
  char group = 0;  // ',' or '_' (str.format only)
};

// Inserts s.group between groups of digits of the integer part of a formatted number.
std::string grouped(const std::string& body, const Spec& s) {
  if (!s.group) return body;
  const size_t every = (s.type == 'x' || s.type == 'X' || s.type == 'o' || s.type == 'b') ? 4 : 3;
  size_t start = 0;
  while (start < body.size() && (body[start] == '-' || body[start] == '+' || body[start] == ' '))
    ++start;
  if (body.size() > start + 1 && body[start] == '0' &&
      std::isalpha(static_cast<unsigned char>(body[start + 1])))
    start += 2;
  size_t end = start;
  while (end < body.size() && std::isalnum(static_cast<unsigned char>(body[end])) &&
         body[end] != 'e' && body[end] != 'E')
    ++end;
  std::string digits = body.substr(start, end - start);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % every == 0) out.push_back(s.group);
    out.push_back(digits[i]);
  }
  return body.substr(0, start) + out + body.substr(end);
}

std::string padded(const std::string& body, const Spec& s, char default_align) {
  const auto len = static_cast<int64_t>(utf8_length(body));
  if (s.width <= len) return body;
  const int64_t total = std::min(s.width, kMaxWidth) - len;
  const char align = s.align ? s.align : default_align;
  int64_t left = align == '<' ? 0 : align == '^' ? total / 2 : total;
  if (align == '=') {  // padding after the sign / prefix
    size_t prefix = 0;
    if (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) prefix = 1;
    if (body.size() > prefix + 1 && body[prefix] == '0' &&
        std::string("xXoObB").find(body[prefix + 1]) != std::string::npos) {
      prefix += 2;
    }
    return body.substr(0, prefix) + std::string(static_cast<size_t>(total), s.fill) +
           body.substr(prefix);
  }
  return std::string(static_cast<size_t>(left), s.fill) + body +
         std::string(static_cast<size_t>(total - left), s.fill);
}

std::string int_text(int64_t v, const Spec& s) {
  const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  int base = 10;
  const char t = s.type;
  if (t == 'x' || t == 'X') base = 16;
  if (t == 'o') base = 8;
  if (t == 'b') base = 2;
  std::string digits;
  uint64_t m = mag;
  do {
    const auto d = static_cast<int>(m % static_cast<uint64_t>(base));
    digits.insert(digits.begin(),
                  static_cast<char>(d < 10 ? '0' + d : (t == 'X' ? 'A' : 'a') + d - 10));
    m /= static_cast<uint64_t>(base);
  } while (m);
  std::string prefix = v < 0 ? "-" : s.sign == '+' ? "+" : s.sign == ' ' ? " " : "";
  if (s.alt && base != 10)
    prefix += std::string("0") + (t == 'X' ? 'X' : t == 'o' ? 'o' : t == 'b' ? 'b' : 'x');
  if (s.precision > static_cast<int64_t>(digits.size())) {  // printf-style minimum digits
    digits.insert(0, static_cast<size_t>(std::min(s.precision, kMaxWidth)) - digits.size(), '0');
  }
  return prefix + digits;
}

std::string float_text(double v, const Spec& s) {
  char t = s.type ? s.type : 'g';
  std::string fmt = "%";
  if (s.sign == '+' || s.sign == ' ') fmt.push_back(s.sign);
  if (s.alt) fmt.push_back('#');
  fmt += '.';
  fmt += std::to_string(s.precision < 0 ? 6 : std::min<int64_t>(s.precision, 400));
  fmt.push_back(t);
  char buf[1024];
  std::snprintf(buf, sizeof(buf), fmt.c_str(), v);
  return buf;
}

Result<int64_t> as_int(const Value& v, char conv) {
  if (v.is_integral()) return v.as_int();
  if (v.is_float() && std::isfinite(v.as_double()) && std::fabs(v.as_double()) < 9.2e18 &&
      (conv == 'd' || conv == 'i' || conv == 'u')) {
    return static_cast<int64_t>(v.as_double());
  }
  return type_error(std::string("%") + conv + " format: a number is required, not " +
                    std::string(v.type_name()));
}

}  // namespace

Result<std::string> percent_format(const std::string& fmt, const Value& args, size_t max_bytes) {
  List positional;
  const bool mapping = args.is_dict();
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    positional.push_back(args);
  }
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  auto take = [&]() -> Result<Value> {
    if (next >= positional.size()) return type_error("not enough arguments for format string");
    return positional[next++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (out.size() > max_bytes) return make_error("text longer than ", max_bytes, " bytes");
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) return make_error("incomplete format");
    Value value;
    bool have = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) return make_error("incomplete format key");
      if (!mapping) return type_error("format requires a mapping");
      const Value* v = args.dict().find(fmt.substr(i + 1, close - i - 1));
      if (!v) return make_error("format key '", fmt.substr(i + 1, close - i - 1), "' not found");
      value = *v;
      have = used_mapping = true;
      i = close + 1;
    }
    Spec s;
    for (; i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos; ++i) {
      if (fmt[i] == '-') s.align = '<';
      if (fmt[i] == '+' || (fmt[i] == ' ' && s.sign != '+')) s.sign = fmt[i];
      if (fmt[i] == '#') s.alt = true;
      if (fmt[i] == '0' && s.align != '<') s.fill = '0', s.align = '=';
    }
    auto number = [&](int64_t* target) -> Status {
      if (i < fmt.size() && fmt[i] == '*') {
        PARETO_TRY(Value w, take());
        if (!w.is_integral()) return type_error("* wants int");
        *target = w.as_int();
        ++i;
        return ok();
      }
      if (i >= fmt.size() || fmt[i] < '0' || fmt[i] > '9') return ok();
      *target = 0;
      for (; i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9'; ++i)
        *target = std::min(*target * 10 + (fmt[i] - '0'), kMaxWidth + 1);
      return ok();
    };
    PARETO_RETURN_IF_ERROR(number(&s.width));
    PARETO_RETURN_IF_ERROR(check_spec(s.width, -1));
    if (s.width < 0 && s.width != -1) s.align = '<', s.width = -s.width;
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      s.precision = 0;
      PARETO_RETURN_IF_ERROR(number(&s.precision));
      PARETO_RETURN_IF_ERROR(check_spec(0, s.precision));
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) return make_error("incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!have) {
      PARETO_TRY(value, take());
    }
    std::string body;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        body = conv == 's' ? to_str(value) : to_repr(value);
        if (s.precision >= 0) {
          std::u32string cps = utf8_decode(body);
          if (static_cast<int64_t>(cps.size()) > s.precision)
            cps.resize(static_cast<size_t>(s.precision));
          body = utf8_encode(cps);
        }
        if (s.align == '=') s.align = 0, s.fill = ' ';
        out += padded(body, s, '>');
        continue;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        PARETO_TRY(int64_t n, as_int(value, conv));
        s.type = conv;
        body = int_text(n, s);
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G':
        if (!value.is_number()) {
          return type_error(std::string("must be real number, not ") +
                            std::string(value.type_name()));
        }
        s.type = conv;
        body = float_text(value.as_double(), s);
        break;
      case 'c':
        if (value.is_integral() && value.as_int() >= 0 && value.as_int() <= 0x10FFFF) {
          utf8_append(body, static_cast<char32_t>(value.as_int()));
        } else if (value.is_string() && utf8_length(value.str()) == 1) {
          body = value.str();
        } else {
          return type_error("%c requires an int or a single character");
        }
        if (s.align == '=') s.align = 0, s.fill = ' ';
        break;
      default:
        return make_error("unsupported format character '", std::string(1, conv), "'");
    }
    out += padded(body, s, '>');
  }
  // Python treats any argument with __getitem__ (but a tuple or str) as a possible mapping and
  // then does not complain about unused arguments.
  if (!mapping && !args.is_list() && next < positional.size()) {
    return type_error("not all arguments converted during string formatting");
  }
  (void)used_mapping;
  return out;
}

Result<std::string> str_format(const std::string& fmt, const Args& args, size_t max_bytes) {
  std::string out;
  size_t auto_index = 0;
  bool manual = false;
  bool automatic = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (out.size() > max_bytes) return make_error("text longer than ", max_bytes, " bytes");
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return make_error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return make_error("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    if (field.find('{') != std::string::npos)
      return type_error("nested format fields are not supported");
    std::string spec_text;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec_text = field.substr(colon + 1);
      field.resize(colon);
    }
    char conversion = 0;
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) return make_error("expected ':' after conversion specifier");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    Value value;
    if (field.empty()) {
      if (manual)
        return make_error(
            "cannot switch from manual field specification to automatic field numbering");
      automatic = true;
      if (auto_index >= args.pos.size())
        return make_error("Replacement index ", auto_index, " out of range");
      value = args.pos[auto_index++];
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      if (automatic)
        return make_error(
            "cannot switch from automatic field numbering to manual field specification");
      manual = true;
      const size_t idx = field.size() > 9 ? SIZE_MAX : std::strtoul(field.c_str(), nullptr, 10);
      if (idx >= args.pos.size()) return make_error("Replacement index ", field, " out of range");
      value = args.pos[idx];
    } else if (field.find_first_of(".[") != std::string::npos) {
      return type_error("format fields with attributes or indices are not supported");
    } else {
      bool found = false;
      for (const auto& [k, v] : args.kw) {
        if (k == field) value = v, found = true;
      }
      if (!found) return make_error("format key '", field, "' not found");
    }
    if (conversion == 'r' || conversion == 'a') {
      value = Value::string(to_repr(value));
    } else if (conversion == 's') {
      value = Value::string(to_str(value));
    } else if (conversion) {
      return make_error("unknown conversion specifier ", std::string(1, conversion));
    }
    // The format mini-language: [[fill]align][sign][#][0][width][.precision][type]
    Spec s;
    size_t k = 0;
    const std::string& t = spec_text;
    if (t.size() >= 2 && std::string("<>=^").find(t[1]) != std::string::npos) {
      s.fill = t[0], s.align = t[1], k = 2;
    } else if (!t.empty() && std::string("<>=^").find(t[0]) != std::string::npos) {
      s.align = t[0], k = 1;
    }
    if (k < t.size() && (t[k] == '+' || t[k] == '-' || t[k] == ' ')) s.sign = t[k++];
    if (k < t.size() && t[k] == '#') s.alt = true, ++k;
    if (k < t.size() && t[k] == '0') {
      if (!s.align) s.fill = '0', s.align = '=';
      ++k;
    }
    if (k < t.size() && t[k] >= '0' && t[k] <= '9') {
      s.width = 0;
      for (; k < t.size() && t[k] >= '0' && t[k] <= '9'; ++k)
        s.width = std::min(s.width * 10 + (t[k] - '0'), kMaxWidth + 1);
    }
    if (k < t.size() && (t[k] == ',' || t[k] == '_')) s.group = t[k++];
    if (k < t.size() && t[k] == '.') {
      s.precision = 0;
      for (++k; k < t.size() && t[k] >= '0' && t[k] <= '9'; ++k)
        s.precision = std::min(s.precision * 10 + (t[k] - '0'), kMaxWidth + 1);
    }
    if (k < t.size()) s.type = t[k++];
    PARETO_RETURN_IF_ERROR(check_spec(s.width, s.precision));
    if (k != t.size()) return type_error("format spec '" + t + "' is not supported");
    if (value.is_string() && (s.type == 0 || s.type == 's')) {
      std::string body = value.str();
      if (s.precision >= 0) {
        std::u32string cps = utf8_decode(body);
        if (static_cast<int64_t>(cps.size()) > s.precision)
          cps.resize(static_cast<size_t>(s.precision));
        body = utf8_encode(cps);
      }
      out += padded(body, s, '<');
    } else if (value.is_integral() && !(value.is_bool() && s.type == 0) &&
               std::string("dxXob").find(s.type ? s.type : 'd') != std::string::npos) {
      if (s.type == 0) s.type = 'd';
      s.precision = -1;
      out += padded(grouped(int_text(value.as_int(), s), s), s, '>');
    } else if (value.is_number() && !(value.is_bool() && s.type == 0) &&
               std::string("eEfFgG%").find(s.type ? s.type : 'r') != std::string::npos) {
      double d = value.as_double();
      std::string body;
      if (s.type == '%') {
        s.type = 'f';
        body = float_text(d * 100, s) + "%";
      } else {
        body = float_text(d, s);
      }
      out += padded(grouped(body, s), s, '>');
    } else if (s.type == 0 && spec_text.empty()) {
      out += to_str(value);
    } else if (s.type == 0 && !value.is_number() && s.precision < 0 && !s.alt && s.sign == '-' &&
               s.align != '=') {
      out += padded(to_str(value), s, '<');
    } else if (value.is_float() && s.type == 0) {
      out += padded(s.precision < 0 ? float_repr(value.as_double())
                                    : float_text(value.as_double(),
                                                 [&] {
                                                   Spec g = s;
                                                   g.type = 'g';
                                                   return g;
                                                 }()),
                    s, '>');
    } else {
      return type_error(
          cat("format spec '", spec_text, "' for a ", value.type_name(), " is not supported"));
    }
  }
  return out;
}

}  // namespace pareto::tokenizer::jinja
