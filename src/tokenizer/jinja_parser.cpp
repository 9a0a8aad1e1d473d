#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser_impl.h"

namespace pareto::tokenizer::jinja {
namespace parser_detail {

Result<Body> Parser::subparse(Names ends, std::string* end) {
  Nest nest(&depth_);
  PARETO_RETURN_IF_ERROR(check_depth());
  Body body;
  while (true) {
    const Token& t = cur();
    if (t.type == Tok::kEof) {
      if (ends.size() == 0) return body;
      std::string list;
      for (std::string_view e : ends) list += (list.empty() ? "'" : " or '") + std::string(e) + "'";
      return syntax(t.pos, cat("unexpected end of template, expected ", list));
    }
    if (t.type == Tok::kData) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kText;
      s->pos = t.pos;
      s->text = t.text;
      body.push_back(std::move(s));
      next();
    } else if (t.type == Tok::kVarBegin) {
      next();
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kOutput;
      s->pos = t.pos;
      PARETO_TRY(auto e, parse_tuple(true, {}, false));
      s->exprs.push_back(std::move(e));
      PARETO_RETURN_IF_ERROR(expect(Tok::kVarEnd, "end of print statement ('}}')"));
      body.push_back(std::move(s));
    } else if (t.type == Tok::kBlockBegin) {
      next();
      if (cur().type == Tok::kName && in(cur().text, ends)) {
        *end = cur().text;
        return body;
      }
      PARETO_TRY(auto s, parse_statement(ends));
      PARETO_RETURN_IF_ERROR(expect(Tok::kBlockEnd, "end of statement block ('%}')"));
      if (s) body.push_back(std::move(s));
    } else {
      return syntax(t.pos, cat("unexpected ", describe(t)));
    }
  }
}

Result<Body> Parser::parse_body(Names ends, std::string* end, bool drop) {
  skip_op(":");
  PARETO_RETURN_IF_ERROR(expect(Tok::kBlockEnd, "end of statement block ('%}')"));
  std::string found;
  PARETO_TRY(Body body, subparse(ends, &found));
  if (end) *end = found;
  if (drop) next();
  return body;
}

Result<StmtPtr> Parser::parse_statement(Names enclosing_ends) {
  const Token t = cur();
  if (t.type != Tok::kName) return syntax(t.pos, cat("tag name expected, found ", describe(t)));
  const std::string& tag = t.text;
  auto s = std::make_unique<Stmt>();
  s->pos = t.pos;
  if (tag == "if") return parse_if(std::move(s));
  if (tag == "for") return parse_for(std::move(s));
  if (tag == "set") return parse_set(std::move(s));
  if (tag == "macro") return parse_macro(std::move(s));
  if (tag == "with") return parse_with(std::move(s));
  if (tag == "filter") {
    next();
    s->kind = StmtKind::kFilterBlock;
    PARETO_TRY(s->expr, parse_filter(nullptr, true));
    return scoped_body(std::move(s), "endfilter");
  }
  if (tag == "generation") {
    next();
    s->kind = StmtKind::kScope;
    return scoped_body(std::move(s), "endgeneration");
  }
  if (tag == "print") {
    next();
    s->kind = StmtKind::kOutput;
    while (cur().type != Tok::kBlockEnd) {
      if (!s->exprs.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
      PARETO_TRY(auto e, parse_expression(true));
      s->exprs.push_back(std::move(e));
    }
    return s;
  }
  if (tag == "break" || tag == "continue") {
    if (loop_depth_ == 0) return syntax(t.pos, cat("'", tag, "' outside loop"));
    next();
    s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
    return s;
  }
  if (in(tag, {"extends", "include", "import", "from", "block", "call", "autoescape", "do", "trans",
               "pluralize", "debug"})) {
    return unsupported(t.pos, cat("{% ", tag, " %} is not supported"));
  }
  std::string msg = "unknown tag '" + tag + "'";
  if (enclosing_ends.size() > 0) {
    msg += " (expected";
    bool first = true;
    for (std::string_view e : enclosing_ends) {
      msg += std::string(first ? " '" : " or '") + std::string(e) + "'";
      first = false;
    }
    msg += ")";
  }
  return syntax(t.pos, msg);
}

Result<StmtPtr> Parser::scoped_body(StmtPtr s, std::string_view end) {
  PARETO_TRY(s->body, parse_body({end}, nullptr, true));
  return s;
}

Result<StmtPtr> Parser::parse_if(StmtPtr s) {
  s->kind = StmtKind::kIf;
  next();
  while (true) {
    PARETO_TRY(auto cond, parse_tuple(false, {}, false));
    std::string end;
    PARETO_TRY(Body body, parse_body({"elif", "else", "endif"}, &end, true));
    s->branches.emplace_back(std::move(cond), std::move(body));
    if (end == "elif") continue;
    if (end == "else") {
      PARETO_TRY(s->else_body, parse_body({"endif"}, nullptr, true));
    }
    break;
  }
  return s;
}

Result<StmtPtr> Parser::parse_for(StmtPtr s) {
  s->kind = StmtKind::kFor;
  next();
  PARETO_TRY(s->target, parse_target(false, "in"));
  PARETO_RETURN_IF_ERROR(expect_name("in"));
  PARETO_TRY(s->expr, parse_tuple(false, {"recursive"}, false));
  if (skip_name("if")) {
    PARETO_TRY(s->cond, parse_expression(true));
  }
  if (is_name("recursive")) return unsupported(cur().pos, "recursive for loops are not supported");
  ++loop_depth_;
  std::string end;
  auto body = parse_body({"endfor", "else"}, &end, true);
  --loop_depth_;
  if (!body) return tl::unexpected(body.error());
  s->body = std::move(*body);
  if (end == "else") {
    PARETO_TRY(s->else_body, parse_body({"endfor"}, nullptr, true));
  }
  return s;
}

Result<StmtPtr> Parser::parse_set(StmtPtr s) {
  next();
  PARETO_TRY(s->target, parse_target(true, ""));
  if (skip_op("=")) {
    s->kind = StmtKind::kSet;
    PARETO_TRY(s->expr, parse_tuple(true, {}, false));
    return s;
  }
  s->kind = StmtKind::kSetBlock;
  if (is_op("|")) {
    PARETO_TRY(s->expr, parse_filter(nullptr, false));
  }
  return scoped_body(std::move(s), "endset");
}

Result<StmtPtr> Parser::parse_macro(StmtPtr s) {
  s->kind = StmtKind::kMacro;
  next();
  PARETO_TRY(s->text, expect_any_name());
  PARETO_RETURN_IF_ERROR(expect_op("("));
  while (!is_op(")")) {
    if (!s->params.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
    PARETO_TRY(std::string param, expect_any_name());
    ExprPtr def;
    if (skip_op("=")) {
      PARETO_TRY(def, parse_expression(true));
    } else if (std::any_of(s->exprs.begin(), s->exprs.end(),
                           [](const ExprPtr& e) { return e != nullptr; })) {
      return syntax(cur().pos, "non-default argument follows default argument");
    }
    s->params.push_back(std::move(param));
    s->exprs.push_back(std::move(def));
  }
  next();
  const int loops = loop_depth_;
  loop_depth_ = 0;
  macros_.push_back(s.get());
  auto body = scoped_body(std::move(s), "endmacro");
  macros_.pop_back();
  loop_depth_ = loops;
  return body;
}

Result<StmtPtr> Parser::parse_with(StmtPtr s) {
  s->kind = StmtKind::kWith;
  next();
  while (cur().type != Tok::kBlockEnd) {
    if (!s->targets.empty()) PARETO_RETURN_IF_ERROR(expect_op(","));
    PARETO_TRY(Target target, parse_target(false, ""));
    PARETO_RETURN_IF_ERROR(expect_op("="));
    PARETO_TRY(auto value, parse_expression(true));
    s->targets.push_back(std::move(target));
    s->exprs.push_back(std::move(value));
  }
  return scoped_body(std::move(s), "endwith");
}

Result<Target> Parser::parse_target(bool with_namespace, std::string_view end_name) {
  Target target;
  if (with_namespace && cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == ".") {
    target.names.push_back(cur().text);
    next();
    next();
    PARETO_TRY(target.ns_attr, expect_any_name());
    return target;
  }
  const bool paren = skip_op("(");
  while (true) {
    if (cur().type != Tok::kName) return expected("a name to assign to");
    target.names.push_back(cur().text);
    next();
    if (!skip_op(",")) break;
    target.tuple = true;
    if (cur().type != Tok::kName || (!end_name.empty() && is_name(end_name))) break;
  }
  if (paren) PARETO_RETURN_IF_ERROR(expect_op(")"));
  for (const std::string& n : target.names) {
    if (in(n, {"true", "false", "none", "True", "False", "None"})) {
      return syntax(cur().pos, "cannot assign to '" + n + "'");
    }
  }
  return target;
}

}  // namespace parser_detail

namespace {

using parser_detail::Parser;

// jinja2 refuses an unknown filter or test when it compiles the template, except in a "soft
// frame": the statements directly in an if (its conditions and bodies, not the bodies of loops
// or macros in there) and conditional expressions.
class UnknownNameCheck {
 public:
  explicit UnknownNameCheck(const std::string& src) : src_(src) {}

  Status body(const Body& b, bool soft) {
    for (const StmtPtr& s : b) PARETO_RETURN_IF_ERROR(stmt(*s, soft));
    return ok();
  }

 private:
  Status stmt(const Stmt& s, bool soft) {
    const bool if_soft = s.kind == StmtKind::kIf || soft;
    for (const auto& [cond, branch] : s.branches) {
      PARETO_RETURN_IF_ERROR(expr(cond.get(), true));
      PARETO_RETURN_IF_ERROR(body(branch, true));
    }
    PARETO_RETURN_IF_ERROR(expr(s.expr.get(), soft));
    PARETO_RETURN_IF_ERROR(expr(s.cond.get(), soft));
    for (const ExprPtr& e : s.exprs) PARETO_RETURN_IF_ERROR(expr(e.get(), soft));
    PARETO_RETURN_IF_ERROR(body(s.body, false));
    return body(s.else_body, s.kind == StmtKind::kIf ? if_soft : false);
  }

  Status expr(const Expr* e, bool soft) {
    if (!e) return ok();
    if (e->kind == ExprKind::kCondExpr) soft = true;
    if (e->defer_unknown && !soft) {
      const bool filter = e->kind == ExprKind::kFilter;
      const char* what = filter ? "filter" : "test";
      const Support s = filter ? filter_support(e->name) : test_support(e->name);
      return make_error_code(
          ErrorCode::kUnsupported, "chat template: ", describe_pos(src_, e->pos), ": ",
          s == Support::kUnsupported ? cat(what, " '", e->name, "' is not supported")
                                     : cat("unknown ", what, " '", e->name, "'"));
    }
    for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()})
      PARETO_RETURN_IF_ERROR(expr(c, soft));
    for (const ExprPtr& c : e->items) PARETO_RETURN_IF_ERROR(expr(c.get(), soft));
    for (const auto& [k, c] : e->kwargs) PARETO_RETURN_IF_ERROR(expr(c.get(), soft));
    return ok();
  }

  const std::string& src_;
};

}  // namespace

Result<std::shared_ptr<const Program>> parse_program(std::string_view source) {
  auto program = std::make_shared<Program>();
  program->source = normalize_source(source);
  PARETO_TRY(auto tokens, tokenize(program->source));
  Parser parser(program->source, tokens);
  PARETO_TRY(program->body, parser.parse_template());
  PARETO_RETURN_IF_ERROR(UnknownNameCheck(program->source).body(program->body, false));
  return std::shared_ptr<const Program>(std::move(program));
}

}  // namespace pareto::tokenizer::jinja
