// Expressions of the Jinja parser, with jinja2's precedence (jinja2/parser.py): conditional
// expressions, or, and, not, comparisons, + -, ~, * / // %, **, unary - +, then primaries with
// their postfix . [] () and their filters and tests.
#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_parser_impl.h"

namespace pareto::tokenizer::jinja::parser_detail {

bool Parser::tuple_end(Names extra) const {
  const Tok t = cur().type;
  if (t == Tok::kVarEnd || t == Tok::kBlockEnd || is_op(")")) return true;
  return cur().type == Tok::kName && in(cur().text, extra);
}

Result<ExprPtr> Parser::parse_tuple(bool with_condexpr, Names extra_end, bool explicit_parens) {
  const uint32_t pos = cur().pos;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
    if (tuple_end(extra_end)) break;
    PARETO_TRY(auto e, parse_expression(with_condexpr));
    items.push_back(std::move(e));
    if (is_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) return expected("an expression");
  }
  PARETO_TRY(auto t, node(ExprKind::kTuple, pos));
  t->items = std::move(items);
  return finish(std::move(t));
}

Result<ExprPtr> Parser::parse_expression(bool with_condexpr) {
  if (!with_condexpr) return parse_or();
  PARETO_TRY(auto expr, parse_or());
  while (is_name("if")) {
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto cond, parse_or());
    ExprPtr other;
    if (skip_name("else")) {
      PARETO_TRY(other, parse_expression(true));
    }
    PARETO_TRY(auto e, node(ExprKind::kCondExpr, pos, std::move(cond), std::move(expr)));
    e->c = std::move(other);
    PARETO_TRY(expr, finish(std::move(e)));
  }
  return expr;
}

Result<ExprPtr> Parser::parse_or() {
  PARETO_TRY(auto left, parse_and());
  while (is_name("or")) {
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto right, parse_and());
    PARETO_TRY(auto e, node(ExprKind::kOr, pos, std::move(left), std::move(right)));
    PARETO_TRY(left, finish(std::move(e)));
  }
  return left;
}

Result<ExprPtr> Parser::parse_and() {
  PARETO_TRY(auto left, parse_not());
  while (is_name("and")) {
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto right, parse_not());
    PARETO_TRY(auto e, node(ExprKind::kAnd, pos, std::move(left), std::move(right)));
    PARETO_TRY(left, finish(std::move(e)));
  }
  return left;
}

Result<ExprPtr> Parser::parse_not() {
  if (is_name("not")) {
    Nest nest(&depth_);
    PARETO_RETURN_IF_ERROR(check_depth());
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto inner, parse_not());
    PARETO_TRY(auto e, node(ExprKind::kNot, pos, std::move(inner)));
    return finish(std::move(e));
  }
  return parse_compare();
}

Result<ExprPtr> Parser::parse_compare() {
  const uint32_t pos = cur().pos;
  PARETO_TRY(auto first, parse_math1());
  std::vector<Op> ops;
  std::vector<ExprPtr> operands;
  while (true) {
    Op op;
    if (is_op("==")) {
      op = Op::kEq;
    } else if (is_op("!=")) {
      op = Op::kNe;
    } else if (is_op("<")) {
      op = Op::kLt;
    } else if (is_op("<=")) {
      op = Op::kLe;
    } else if (is_op(">")) {
      op = Op::kGt;
    } else if (is_op(">=")) {
      op = Op::kGe;
    } else if (is_name("in")) {
      op = Op::kIn;
    } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
      next();
      op = Op::kNotIn;
    } else {
      break;
    }
    next();
    PARETO_TRY(auto operand, parse_math1());
    ops.push_back(op);
    operands.push_back(std::move(operand));
  }
  if (ops.empty()) return first;
  PARETO_TRY(auto e, node(ExprKind::kCompare, pos, std::move(first)));
  e->ops = std::move(ops);
  e->items = std::move(operands);
  return finish(std::move(e));
}

Result<ExprPtr> Parser::binary(Op op, uint32_t pos, ExprPtr left, ExprPtr right) {
  PARETO_TRY(auto e, node(ExprKind::kBinary, pos, std::move(left), std::move(right)));
  e->op = op;
  return finish(std::move(e));
}

Result<ExprPtr> Parser::parse_math1() {
  PARETO_TRY(auto left, parse_concat());
  while (is_op("+") || is_op("-")) {
    const Op op = is_op("+") ? Op::kAdd : Op::kSub;
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto right, parse_concat());
    PARETO_TRY(left, binary(op, pos, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::parse_concat() {
  const uint32_t pos = cur().pos;
  PARETO_TRY(auto first, parse_math2());
  if (!is_op("~")) return first;
  PARETO_TRY(auto e, node(ExprKind::kConcat, pos));
  e->items.push_back(std::move(first));
  while (skip_op("~")) {
    PARETO_TRY(auto item, parse_math2());
    e->items.push_back(std::move(item));
  }
  return finish(std::move(e));
}

Result<ExprPtr> Parser::parse_math2() {
  PARETO_TRY(auto left, parse_pow());
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Op op = is_op("*")    ? Op::kMul
                  : is_op("/")  ? Op::kDiv
                  : is_op("//") ? Op::kFloorDiv
                                : Op::kMod;
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto right, parse_pow());
    PARETO_TRY(left, binary(op, pos, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::parse_pow() {
  PARETO_TRY(auto left, parse_unary(true));
  while (is_op("**")) {
    const uint32_t pos = cur().pos;
    next();
    PARETO_TRY(auto right, parse_unary(true));
    PARETO_TRY(left, binary(Op::kPow, pos, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> Parser::parse_unary(bool with_filter) {
  Nest nest(&depth_);
  PARETO_RETURN_IF_ERROR(check_depth());
  const uint32_t pos = cur().pos;
  ExprPtr e;
  if (is_op("-") || is_op("+")) {
    const ExprKind kind = is_op("-") ? ExprKind::kNeg : ExprKind::kPos;
    next();
    PARETO_TRY(auto inner, parse_unary(false));
    PARETO_TRY(e, node(kind, pos, std::move(inner)));
    PARETO_TRY(e, finish(std::move(e)));
  } else {
    PARETO_TRY(e, parse_primary());
  }
  PARETO_TRY(e, parse_postfix(std::move(e)));
  if (with_filter) return parse_filter_expr(std::move(e));
  return e;
}

Result<ExprPtr> Parser::parse_primary() {
  const Token& t = cur();
  PARETO_TRY(auto e, node(ExprKind::kConst, t.pos));
  switch (t.type) {
    case Tok::kName:
      if (in(t.text, {"true", "True", "false", "False"})) {
        e->value = Value::boolean(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
        if (!macros_.empty() && t.text == "varargs") macros_.back()->uses_varargs = true;
        if (!macros_.empty() && t.text == "kwargs") macros_.back()->uses_kwargs = true;
      }
      next();
      break;
    case Tok::kString: {
      std::string s;
      while (cur().type == Tok::kString) {
        s += cur().text;
        next();
      }
      e->value = Value::string(std::move(s));
      break;
    }
    case Tok::kInt:
      e->value = Value::integer(t.ival);
      next();
      break;
    case Tok::kFloat:
      e->value = Value::number(t.fval);
      next();
      break;
    default:
      if (skip_op("(")) {
        PARETO_TRY(e, parse_tuple(true, {}, true));
        PARETO_RETURN_IF_ERROR(expect_op(")"));
      } else if (is_op("[") || is_op("{")) {
        const bool dict = is_op("{");
        e->kind = dict ? ExprKind::kDict : ExprKind::kList;
        next();
        const char* close = dict ? "}" : "]";
        while (!is_op(close)) {
          if (!e->items.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
          if (is_op(close)) break;
          PARETO_TRY(auto item, parse_expression(true));
          e->items.push_back(std::move(item));
          if (dict) {
            PARETO_RETURN_IF_ERROR(expect_op(":"));
            PARETO_TRY(auto value, parse_expression(true));
            e->items.push_back(std::move(value));
          }
        }
        next();
        return finish(std::move(e));
      } else {
        return syntax(t.pos, cat("unexpected ", describe(t)));
      }
  }
  return e;
}

Result<ExprPtr> Parser::parse_postfix(ExprPtr e) {
  while (true) {
    if (is_op(".") || is_op("[")) {
      PARETO_TRY(e, parse_subscript(std::move(e)));
    } else if (is_op("(")) {
      PARETO_TRY(e, parse_call(std::move(e)));
    } else {
      return e;
    }
  }
}

Result<ExprPtr> Parser::parse_filter_expr(ExprPtr e) {
  while (true) {
    if (is_op("|")) {
      PARETO_TRY(e, parse_filter(std::move(e), false));
    } else if (is_name("is")) {
      PARETO_TRY(e, parse_test(std::move(e)));
    } else if (is_op("(")) {
      PARETO_TRY(e, parse_call(std::move(e)));
    } else {
      return e;
    }
  }
}

Result<ExprPtr> Parser::parse_subscript(ExprPtr target) {
  const uint32_t pos = cur().pos;
  if (skip_op(".")) {
    if (cur().type == Tok::kName) {
      PARETO_TRY(auto e, node(ExprKind::kGetAttr, pos, std::move(target)));
      e->name = cur().text;
      next();
      return finish(std::move(e));
    }
    if (cur().type != Tok::kInt) return expected("a name or number after '.'");
    PARETO_TRY(auto index, node(ExprKind::kConst, cur().pos));
    index->value = Value::integer(cur().ival);
    next();
    PARETO_TRY(auto e, node(ExprKind::kGetItem, pos, std::move(target), std::move(index)));
    return finish(std::move(e));
  }
  next();  // [
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
    PARETO_TRY(auto arg, parse_subscribed());
    args.push_back(std::move(arg));
  }
  PARETO_RETURN_IF_ERROR(expect_op("]"));
  ExprPtr key;
  if (args.size() == 1) {
    key = std::move(args[0]);
  } else {
    PARETO_TRY(key, node(ExprKind::kTuple, pos));
    key->items = std::move(args);
    PARETO_TRY(key, finish(std::move(key)));
  }
  if (key->kind == ExprKind::kSlice) {  // a[b:c:d] is kSlice with the target in a
    key->a = std::move(target);
    return finish(std::move(key));
  }
  PARETO_TRY(auto e, node(ExprKind::kGetItem, pos, std::move(target), std::move(key)));
  return finish(std::move(e));
}

Result<ExprPtr> Parser::parse_subscribed() {
  const uint32_t pos = cur().pos;
  ExprPtr start;
  if (!is_op(":")) {
    PARETO_TRY(start, parse_expression(true));
    if (!is_op(":")) return start;
  }
  next();  // :
  PARETO_TRY(auto e, node(ExprKind::kSlice, pos));
  e->items.push_back(std::move(start));
  ExprPtr stop, step;
  if (!is_op("]") && !is_op(",") && !is_op(":")) {
    PARETO_TRY(stop, parse_expression(true));
  }
  if (skip_op(":") && !is_op("]") && !is_op(",")) {
    PARETO_TRY(step, parse_expression(true));
  }
  e->items.push_back(std::move(stop));
  e->items.push_back(std::move(step));
  return e;  // finished by the caller once the target is known
}

Status Parser::parse_call_args(Expr* e) {
  PARETO_RETURN_IF_ERROR(expect_op("("));
  while (!is_op(")")) {
    if (!e->items.empty() || !e->kwargs.empty()) {
      PARETO_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;
    }
    if (is_op("*") || is_op("**")) {
      return unsupported(cur().pos, "*args and **kwargs in calls are not supported");
    }
    if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
      std::string key = cur().text;
      next();
      next();
      PARETO_TRY(auto value, parse_expression(true));
      e->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (!e->kwargs.empty())
        return syntax(cur().pos, "positional argument after keyword argument");
      PARETO_TRY(auto value, parse_expression(true));
      e->items.push_back(std::move(value));
    }
  }
  next();
  return ok();
}

Result<ExprPtr> Parser::parse_call(ExprPtr callee) {
  PARETO_TRY(auto e, node(ExprKind::kCall, cur().pos, std::move(callee)));
  PARETO_RETURN_IF_ERROR(parse_call_args(e.get()));
  return finish(std::move(e));
}

Result<std::string> Parser::dotted_name() {
  PARETO_TRY(std::string name, expect_any_name());
  while (skip_op(".")) {
    PARETO_TRY(std::string part, expect_any_name());
    name += "." + part;
  }
  return name;
}

void Parser::check_known(Expr* e, bool filter) {
  const Support s = filter ? filter_support(e->name) : test_support(e->name);
  e->defer_unknown = s != Support::kSupported;
}

Result<ExprPtr> Parser::parse_filter(ExprPtr target, bool start_inline) {
  while (is_op("|") || start_inline) {
    if (!start_inline) next();
    start_inline = false;
    PARETO_TRY(auto e, node(ExprKind::kFilter, cur().pos, std::move(target)));
    PARETO_TRY(e->name, dotted_name());
    check_known(e.get(), true);
    if (is_op("(")) PARETO_RETURN_IF_ERROR(parse_call_args(e.get()));
    PARETO_TRY(target, finish(std::move(e)));
  }
  return target;
}

Result<ExprPtr> Parser::parse_test(ExprPtr target) {
  const uint32_t pos = cur().pos;
  next();  // is
  const bool negated = skip_name("not");
  PARETO_TRY(auto e, node(ExprKind::kTest, cur().pos, std::move(target)));
  PARETO_TRY(e->name, dotted_name());
  check_known(e.get(), false);
  const Tok t = cur().type;
  if (is_op("(")) {
    PARETO_RETURN_IF_ERROR(parse_call_args(e.get()));
  } else if ((t == Tok::kName || t == Tok::kString || t == Tok::kInt || t == Tok::kFloat ||
              is_op("[") || is_op("{")) &&
             !(t == Tok::kName && in(cur().text, {"else", "or", "and"}))) {
    if (is_name("is")) return syntax(cur().pos, "cannot chain multiple tests with 'is'");
    PARETO_TRY(auto arg, parse_primary());
    PARETO_TRY(arg, parse_postfix(std::move(arg)));
    e->items.push_back(std::move(arg));
  }
  PARETO_TRY(e, finish(std::move(e)));
  if (!negated) return e;
  PARETO_TRY(auto n, node(ExprKind::kNot, pos, std::move(e)));
  return finish(std::move(n));
}

}  // namespace pareto::tokenizer::jinja::parser_detail
