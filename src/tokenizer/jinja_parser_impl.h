// The parser of jinja_parser.cpp (statements) and jinja_parser_expr.cpp (expressions).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser.h"

namespace pareto::tokenizer::jinja::parser_detail {

using Names = std::initializer_list<std::string_view>;

inline bool in(std::string_view s, Names names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

class Parser {
 public:
  Parser(const std::string& src, const std::vector<Token>& toks) : src_(src), toks_(toks) {}

  Result<Body> parse_template() { return subparse({}, nullptr); }

 private:
  // --- tokens and errors -------------------------------------------------------------------
  const Token& cur() const { return toks_[i_]; }
  const Token& peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  void next() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(std::string_view name) const {
    return cur().type == Tok::kName && cur().text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  std::string describe(const Token& t) const {
    switch (t.type) {
      case Tok::kData:
        return "template data";
      case Tok::kVarBegin:
        return "'{{'";
      case Tok::kVarEnd:
        return "end of print statement";
      case Tok::kBlockBegin:
        return "'{%'";
      case Tok::kBlockEnd:
        return "end of statement block";
      case Tok::kEof:
        return "end of template";
      case Tok::kString:
        return "string";
      case Tok::kInt:
        return "integer";
      case Tok::kFloat:
        return "float";
      default:
        return cat("'", t.text, "'");
    }
  }

  tl::unexpected<Error> syntax(uint32_t pos, const std::string& what) const {
    return make_error("chat template: syntax error at ", describe_pos(src_, pos), ": ", what);
  }
  tl::unexpected<Error> unsupported(uint32_t pos, const std::string& what) const {
    return make_error_code(ErrorCode::kUnsupported, "chat template: ", describe_pos(src_, pos),
                           ": ", what);
  }
  tl::unexpected<Error> expected(const std::string& what) const {
    return syntax(cur().pos, cat("expected ", what, ", found ", describe(cur())));
  }
  Status expect_op(std::string_view op) {
    if (!skip_op(op)) return expected(cat("'", op, "'"));
    return ok();
  }
  Status expect_name(std::string_view name) {
    if (!skip_name(name)) return expected(cat("'", name, "'"));
    return ok();
  }
  Result<std::string> expect_any_name() {
    if (cur().type != Tok::kName) return expected("a name");
    std::string name = cur().text;
    next();
    return name;
  }
  Status expect(Tok type, const char* what) {
    if (cur().type != type) return expected(what);
    next();
    return ok();
  }

  // Nesting guard: statements and expressions deeper than kMaxParseDepth are refused.
  struct Nest {
    explicit Nest(int* d) : depth(d) { ++*depth; }
    ~Nest() { --*depth; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    int* depth;
  };
  Status check_depth() const {
    if (depth_ > kMaxParseDepth) {
      return syntax(cur().pos, cat("nesting deeper than ", std::to_string(kMaxParseDepth)));
    }
    return ok();
  }

  // A new expression node; its height (the evaluator's recursion) is bounded like nesting.
  Result<ExprPtr> node(ExprKind kind, uint32_t pos, ExprPtr a = nullptr, ExprPtr b = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }
  Result<ExprPtr> finish(ExprPtr e) {
    int h = 0;
    for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()}) {
      if (c) h = std::max(h, c->height);
    }
    for (const auto& c : e->items) {
      if (c) h = std::max(h, c->height);
    }
    for (const auto& [k, c] : e->kwargs) h = std::max(h, c->height);
    e->height = h + 1;
    if (e->height > kMaxParseDepth) {
      return syntax(e->pos, cat("expression nested deeper than ", std::to_string(kMaxParseDepth)));
    }
    return e;
  }

  // --- statements (jinja_parser.cpp) ---------------------------------------------------
  // Statements up to a block tag named in `ends` (left as the current token; its name goes to
  // *end). With no `ends`, up to the end of the template.
  Result<Body> subparse(Names ends, std::string* end);
  // After a tag's arguments: %} then the body up to one of `ends`, whose name is consumed when
  // `drop` (then the caller expects the tag's %}).
  Result<Body> parse_body(Names ends, std::string* end, bool drop);
  Result<StmtPtr> parse_statement(Names enclosing_ends);
  Result<StmtPtr> scoped_body(StmtPtr s, std::string_view end);
  Result<StmtPtr> parse_if(StmtPtr s);
  Result<StmtPtr> parse_for(StmtPtr s);
  Result<StmtPtr> parse_set(StmtPtr s);
  Result<StmtPtr> parse_macro(StmtPtr s);
  Result<StmtPtr> parse_with(StmtPtr s);
  // name | name, name, ... | ns.attr (with_namespace)
  Result<Target> parse_target(bool with_namespace, std::string_view end_name);

  // --- expressions (jinja_parser_expr.cpp) ---------------------------------------------
  bool tuple_end(Names extra) const;
  Result<ExprPtr> parse_tuple(bool with_condexpr, Names extra_end, bool explicit_parens);
  Result<ExprPtr> parse_expression(bool with_condexpr);
  Result<ExprPtr> parse_or();
  Result<ExprPtr> parse_and();
  Result<ExprPtr> parse_not();
  Result<ExprPtr> parse_compare();
  Result<ExprPtr> binary(Op op, uint32_t pos, ExprPtr left, ExprPtr right);
  Result<ExprPtr> parse_math1();
  Result<ExprPtr> parse_concat();
  Result<ExprPtr> parse_math2();
  Result<ExprPtr> parse_pow();
  Result<ExprPtr> parse_unary(bool with_filter);
  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_postfix(ExprPtr e);
  Result<ExprPtr> parse_filter_expr(ExprPtr e);
  Result<ExprPtr> parse_subscript(ExprPtr target);
  // An index or a slice b:c:d (each part optional).
  Result<ExprPtr> parse_subscribed();
  Status parse_call_args(Expr* e);
  Result<ExprPtr> parse_call(ExprPtr callee);
  Result<std::string> dotted_name();
  // An unknown filter or test name is an error when the template is run, where jinja2 would
  // accept it at compile time (inside an if or a conditional expression), and otherwise when
  // parsing ends (UnknownNameCheck in jinja_parser.cpp).
  void check_known(Expr* e, bool filter);
  Result<ExprPtr> parse_filter(ExprPtr target, bool start_inline);
  Result<ExprPtr> parse_test(ExprPtr target);

  const std::string& src_;
  const std::vector<Token>& toks_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<Stmt*> macros_;
};

}  // namespace pareto::tokenizer::jinja::parser_detail
