// Python's json.dumps on interpreter values (HF's tojson filter).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {
namespace {

void quote(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  char buf[16];
  auto hex = [&](char32_t c) {
    std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
    out += buf;
  };
  for (size_t pos = 0; pos < s.size();) {
    size_t len = 0;
    const char32_t c = utf8_at(s, pos, &len);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
          if (c > 0xFFFF) {
            const char32_t v = c - 0x10000;
            hex(0xD800 + (v >> 10));
            hex(0xDC00 + (v & 0x3FF));
          } else {
            hex(c);
          }
        } else {
          out.append(s.substr(pos, len));
        }
    }
    pos += len;
  }
  out.push_back('"');
}

class Dumper {
 public:
  explicit Dumper(const JsonOptions& o) : o_(o) {}

  Status dump(std::string& out, const Value& v, size_t level) {
    if (out.size() > o_.max_bytes)
      return make_error("tojson output longer than ", o_.max_bytes, " bytes");
    switch (v.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return ok();
      case Value::Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return ok();
      case Value::Kind::kInt:
        out += std::to_string(v.as_int());
        return ok();
      case Value::Kind::kFloat: {
        const double d = v.as_double();
        if (std::isnan(d)) {
          out += "NaN";
        } else if (std::isinf(d)) {
          out += d < 0 ? "-Infinity" : "Infinity";
        } else {
          out += float_repr(d);
        }
        return ok();
      }
      case Value::Kind::kString:
        quote(out, v.str(), o_.ensure_ascii);
        return ok();
      case Value::Kind::kList:
      case Value::Kind::kTuple: {
        const List& items = v.items();
        if (items.empty()) {
          out += "[]";
          return ok();
        }
        out.push_back('[');
        open(out, level + 1);
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) separator(out, level + 1);
          PARETO_RETURN_IF_ERROR(dump(out, items[i], level + 1));
        }
        close(out, level);
        out.push_back(']');
        return ok();
      }
      case Value::Kind::kDict:
        return dump_dict(out, v.dict(), level);
      default:
        return make_error_code(ErrorCode::kUnsupported, "Object of type ", v.type_name(),
                               " is not JSON serializable");
    }
  }

 private:
  void open(std::string& out, size_t level) const {
    if (!o_.has_indent) return;
    out.push_back('\n');
    for (size_t i = 0; i < level; ++i) out += o_.indent;
  }
  void separator(std::string& out, size_t level) const {
    out += o_.item_sep;
    open(out, level);
  }
  void close(std::string& out, size_t level) const { open(out, level); }

  Status key_text(std::string& out, const Value& k) const {
    if (k.is_string()) {
      quote(out, k.str(), o_.ensure_ascii);
    } else if (k.is_none()) {
      out += "\"null\"";
    } else if (k.is_bool()) {
      out += k.as_bool() ? "\"true\"" : "\"false\"";
    } else if (k.is_int()) {
      out += cat("\"", std::to_string(k.as_int()), "\"");
    } else if (k.is_float()) {
      const double d = k.as_double();
      out += "\"";
      out += std::isnan(d)   ? "NaN"
             : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity")
                             : float_repr(d);
      out += "\"";
    } else {
      return make_error_code(ErrorCode::kUnsupported,
                             "keys must be str, int, float, bool or None, not ", k.type_name());
    }
    return ok();
  }

  Status dump_dict(std::string& out, const Dict& d, size_t level) {
    if (d.entries.empty()) {
      out += "{}";
      return ok();
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (o_.sort_keys) {
      for (const auto* e : entries) PARETO_RETURN_IF_ERROR(compare(entries[0]->first, e->first));
      std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) {
        auto c = compare(a->first, b->first);
        return c && *c < 0;
      });
    }
    out.push_back('{');
    open(out, level + 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) separator(out, level + 1);
      PARETO_RETURN_IF_ERROR(key_text(out, entries[i]->first));
      out += o_.key_sep;
      PARETO_RETURN_IF_ERROR(dump(out, entries[i]->second, level + 1));
    }
    close(out, level);
    out.push_back('}');
    return ok();
  }

  const JsonOptions& o_;
};

}  // namespace

Result<std::string> to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  PARETO_RETURN_IF_ERROR(Dumper(options).dump(out, v, 0));
  if (out.size() > options.max_bytes) {
    return make_error("tojson output longer than ", options.max_bytes, " bytes");
  }
  return out;
}

}  // namespace pareto::tokenizer::jinja
