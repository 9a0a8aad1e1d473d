// Python's operators on interpreter values: arithmetic, comparison, membership, slicing and
// iteration.
#include <cmath>
#include <limits>

#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {
namespace {

const char* op_text(Op op) {
  switch (op) {
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kFloorDiv:
      return "//";
    case Op::kMod:
      return "%";
    case Op::kPow:
      return "**";
    default:
      return "?";
  }
}

tl::unexpected<Error> operand_type_error(Op op, const Value& a, const Value& b) {
  return make_error_code(ErrorCode::kUnsupported, "unsupported operand type(s) for ", op_text(op),
                         ": '", a.type_name(), "' and '", b.type_name(), "'");
}

tl::unexpected<Error> overflow() {
  return make_error_code(ErrorCode::kUnsupported, "integer overflow (beyond 64 bits)");
}

Result<Value> int_op(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  switch (op) {
    case Op::kAdd:
      if (__builtin_add_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kSub:
      if (__builtin_sub_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kMul:
      if (__builtin_mul_overflow(x, y, &r)) return overflow();
      return Value::integer(r);
    case Op::kFloorDiv:
    case Op::kMod: {
      if (y == 0) return make_error("integer division or modulo by zero");
      if (y == -1) {
        if (op == Op::kMod) return Value::integer(0);
        if (x == std::numeric_limits<int64_t>::min()) return overflow();
        return Value::integer(-x);
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        q -= 1;
        m += y;
      }
      return Value::integer(op == Op::kFloorDiv ? q : m);
    }
    case Op::kPow: {
      if (y < 0) {
        if (x == 0) return make_error("0.0 cannot be raised to a negative power");
        return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      int64_t result = 1;
      int64_t base = x;
      while (y > 0) {
        if (y & 1) {
          if (__builtin_mul_overflow(result, base, &result)) return overflow();
        }
        y >>= 1;
        if (y > 0 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value::integer(result);
    }
    default:
      return Value::none();
  }
}

Result<Value> float_op(Op op, double x, double y) {
  switch (op) {
    case Op::kAdd:
      return Value::number(x + y);
    case Op::kSub:
      return Value::number(x - y);
    case Op::kMul:
      return Value::number(x * y);
    case Op::kDiv:
      if (y == 0) return make_error("division by zero");
      return Value::number(x / y);
    case Op::kFloorDiv:
    case Op::kMod: {
      if (y == 0) return make_error("float floor division or modulo by zero");
      double mod = std::fmod(x, y);
      double div = (x - mod) / y;
      if (mod != 0) {
        if ((y < 0) != (mod < 0)) {
          mod += y;
          div -= 1.0;
        }
      } else {
        mod = std::copysign(0.0, y);
      }
      double floordiv = 0;
      if (div != 0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
      } else {
        floordiv = std::copysign(0.0, x / y);
      }
      return Value::number(op == Op::kMod ? mod : floordiv);
    }
    case Op::kPow: {
      if (x == 0 && y < 0) return make_error("0.0 cannot be raised to a negative power");
      if (x < 0 && std::floor(y) != y) {
        return make_error_code(ErrorCode::kUnsupported, "a negative number to a fractional power");
      }
      const double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) {
        return make_error("numerical result out of range");
      }
      return Value::number(r);
    }
    default:
      return Value::none();
  }
}

Result<Value> repeat(Evaluator& ev, const Value& seq, int64_t n) {
  if (n <= 0) {
    if (seq.is_string()) return Value::string("");
    return seq.is_list() ? Value::list({}) : Value::tuple({});
  }
  if (seq.is_string()) {
    const size_t len = seq.str().size();
    if (len > 0)
      PARETO_RETURN_IF_ERROR(
          ev.check_size(static_cast<size_t>(n) > SIZE_MAX / len ? SIZE_MAX : len * n));
    std::string out;
    out.reserve(len * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return seq.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  const List& items = seq.items();
  if (static_cast<double>(items.size()) * static_cast<double>(n) > kMaxValueWeight) {
    return make_error("value with more than ", kMaxValueWeight, " items");
  }
  List out;
  out.reserve(items.size() * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
}

}  // namespace

Result<Value> binary_op(Evaluator& ev, Op op, const Value& a, const Value& b) {
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral() && op != Op::kDiv)
      return int_op(op, a.as_int(), b.as_int());
    return float_op(op, a.as_double(), b.as_double());
  }
  switch (op) {
    case Op::kAdd:
      if (a.is_string() && b.is_string()) {
        PARETO_RETURN_IF_ERROR(ev.check_size(a.str().size() + b.str().size()));
        if (a.is_markup() || b.is_markup()) {  // Markup escapes the plain operand
          return Value::markup(cat(a.is_markup() ? a.str() : html_escape(a.str()),
                                   b.is_markup() ? b.str() : html_escape(b.str())));
        }
        return Value::string(a.str() + b.str());
      }
      if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
        List out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return a.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
      }
      if (a.is_string() || a.is_sequence()) {
        return make_error_code(ErrorCode::kUnsupported, "can only concatenate ", a.type_name(),
                               " (not \"", b.type_name(), "\") to ", a.type_name());
      }
      return operand_type_error(op, a, b);
    case Op::kMul:
      if ((a.is_string() || a.is_sequence()) && b.is_integral()) return repeat(ev, a, b.as_int());
      if (a.is_integral() && (b.is_string() || b.is_sequence())) return repeat(ev, b, a.as_int());
      return operand_type_error(op, a, b);
    case Op::kMod:
      if (a.is_markup()) {  // Markup % args escapes the arguments
        auto esc = [](const Value& x) {
          if (x.is_markup() || x.is_number()) return x;
          return Value::markup(html_escape(to_str(x)));
        };
        Value args = b;
        if (b.is_tuple()) {
          List items;
          for (const Value& x : b.items()) items.push_back(esc(x));
          args = Value::tuple(std::move(items));
        } else if (b.is_dict()) {
          Dict d;
          for (const auto& [k, x] : b.dict().entries) d.entries.emplace_back(k, esc(x));
          args = Value::dict(std::move(d));
        } else {
          args = esc(b);
        }
        PARETO_TRY(std::string s, percent_format(a.str(), args, ev.max_output()));
        return Value::markup(std::move(s));
      }
      if (a.is_string()) {
        PARETO_TRY(std::string s, percent_format(a.str(), b, ev.max_output()));
        return Value::string(std::move(s));
      }
      return operand_type_error(op, a, b);
    default:
      return operand_type_error(op, a, b);
  }
}

Result<Value> negate(const Value& v) {
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_float()) return Value::number(-v.as_double());
  if (v.is_integral()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) return overflow();
    return Value::integer(-v.as_int());
  }
  return make_error_code(ErrorCode::kUnsupported, "bad operand type for unary -: '", v.type_name(),
                         "'");
}

Result<Value> slice_value(const Value& obj, const Value& start, const Value& stop,
                          const Value& step) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (!obj.is_string() && !obj.is_sequence()) {  // jinja2 slices without its getitem
    return make_error_code(ErrorCode::kUnsupported, "'", obj.type_name(),
                           "' object is not subscriptable");
  }
  for (const Value* v : {&start, &stop, &step}) {
    if (!v->is_none() && !v->is_integral()) {
      return make_error_code(ErrorCode::kUnsupported,
                             "slice indices must be integers or None, not ", v->type_name());
    }
  }
  const int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) return make_error("slice step cannot be zero");
  std::u32string chars;
  if (obj.is_string()) chars = utf8_decode(obj.str());
  const int64_t n = obj.is_string() ? static_cast<int64_t>(chars.size())
                                    : static_cast<int64_t>(obj.items().size());
  const int64_t lower = st > 0 ? 0 : -1;
  const int64_t upper = st > 0 ? n : n - 1;
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) {
      i = i < -n ? lower : i + n;  // i + n without overflow for any int64 i >= -n
      if (i < lower) i = lower;
    } else if (i > upper) {
      i = upper;
    }
    return i;
  };
  const int64_t b = adjust(start, st > 0 ? lower : upper);
  const int64_t e = adjust(stop, st > 0 ? upper : lower);
  std::vector<size_t> picks;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    picks.push_back(static_cast<size_t>(i));
    if ((st > 0 && i > std::numeric_limits<int64_t>::max() - st) ||
        (st < 0 && i < std::numeric_limits<int64_t>::min() - st)) {
      break;
    }
  }
  if (obj.is_string()) {
    std::u32string out;
    for (size_t i : picks) out.push_back(chars[i]);
    return obj.is_markup() ? Value::markup(utf8_encode(out)) : Value::string(utf8_encode(out));
  }
  List out;
  for (size_t i : picks) out.push_back(obj.items()[i]);
  return obj.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
}

Result<List> iterate(const Value& v) {
  if (v.is_sequence() || v.is_generator()) return v.items();
  if (v.is_undefined()) return List{};
  if (v.is_string()) {
    List out;
    const std::string& s = v.str();
    for (size_t pos = 0; pos < s.size();) {
      size_t len = 0;
      utf8_at(s, pos, &len);
      out.push_back(Value::string(s.substr(pos, len)));
      pos += len;
    }
    return out;
  }
  if (v.is_dict()) {
    List out;
    for (const auto& [k, val] : v.dict().entries) out.push_back(k);
    return out;
  }
  return make_error_code(ErrorCode::kUnsupported, "'", v.type_name(), "' object is not iterable");
}

Result<int> compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) {
      return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    }
    const double x = a.as_double();
    const double y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) {
    const List& x = a.items();
    const List& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  return make_error_code(ErrorCode::kUnsupported, "'<' not supported between instances of '",
                         a.type_name(), "' and '", b.type_name(), "'");
}

Result<bool> contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) {
      return make_error_code(ErrorCode::kUnsupported,
                             "'in <string>' requires string as left operand, not ",
                             item.type_name());
    }
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_dict() && (item.is_list() || item.is_dict())) {
    return make_error_code(ErrorCode::kUnsupported, "unhashable type: '", item.type_name(), "'");
  }
  if (container.is_sequence() || container.is_generator()) {
    for (const Value& v : container.items()) {
      if (equals(v, item)) return true;
    }
    return false;
  }
  if (container.is_dict()) return container.dict().find(item) != nullptr;
  if (container.is_undefined()) return false;
  return make_error_code(ErrorCode::kUnsupported, "argument of type '", container.type_name(),
                         "' is not iterable");
}

}  // namespace pareto::tokenizer::jinja
