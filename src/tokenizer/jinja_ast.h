// The parsed form of a Jinja template: expressions and statements as jinja2's parser builds them
// (jinja2/nodes.py), reduced to what the interpreter supports.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace pareto::tokenizer::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  kConst,     // value
  kName,      // name
  kList,      // items
  kTuple,     // items
  kDict,      // items: key, value, key, value, ...
  kGetAttr,   // a.name
  kGetItem,   // a[b]
  kSlice,     // a[b:c:d]: a, then items = {b, c, d}, each possibly null
  kCall,      // a(items..., kwargs)
  kFilter,    // a | name(items..., kwargs); a is null in a filter block or set block
  kTest,      // a is name(items..., kwargs)
  kNeg,       // -a
  kPos,       // +a
  kNot,       // not a
  kBinary,    // a op b: + - * / // % **
  kConcat,    // items joined with ~
  kAnd,       // a and b
  kOr,        // a or b
  kCompare,   // a op1 items[0] op2 items[1] ... (ops in `ops`)
  kCondExpr,  // b if a else c (c may be null)
};

enum class Op : uint8_t {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kFloorDiv,
  kMod,
  kPow,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kNotIn,
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  uint32_t pos = 0;  // byte offset in the normalized source
  Value value;       // kConst
  std::string name;  // kName, kGetAttr, kFilter, kTest
  Op op = Op::kAdd;  // kBinary
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<Op> ops;         // kCompare
  bool defer_unknown = false;  // kFilter/kTest with an unknown name inside an if: error when run
  int height = 1;              // of this expression tree (bounded by the parser)
};

enum class StmtKind : uint8_t {
  kText,      // text
  kOutput,    // {{ expr }}: exprs
  kIf,        // branches (cond, body); else_body
  kFor,       // targets in expr [if cond] body else_body
  kSet,       // targets (or ns_attr) = expr
  kSetBlock,  // {% set target %}body{% endset %}, filter in `expr` (a kFilter chain) or null
  kMacro,     // name(params = defaults) body
  kBreak,
  kContinue,
  kWith,         // targets = values (exprs), body
  kFilterBlock,  // expr (kFilter chain over null), body
  kScope,        // body rendered as is ({% generation %})
};

// An assignment target: a name, a tuple of names, or (for set) namespace.attr.
struct Target {
  std::vector<std::string> names;  // one name, or the names of a tuple
  bool tuple = false;
  std::string ns_attr;  // non-empty: names[0].ns_attr = ...
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  uint32_t pos = 0;
  std::string text;                                // kText; kMacro: the macro name
  ExprPtr expr;                                    // kSet, kFor (iterable), filter chains
  ExprPtr cond;                                    // kFor: the `if` filter
  Target target;                                   // kSet, kSetBlock, kFor
  std::vector<ExprPtr> exprs;                      // kOutput; kWith values; kMacro defaults
  std::vector<Target> targets;                     // kWith
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf
  Body body;
  Body else_body;
  std::vector<std::string> params;  // kMacro
  bool uses_varargs = false;        // kMacro: the body mentions `varargs` / `kwargs`
  bool uses_kwargs = false;
};

struct Program {
  std::string source;  // normalized (newlines \n, one trailing newline removed)
  Body body;
};

// "line L:C" for a byte offset of `source` (column in code points, both 1-based).
std::string describe_pos(const std::string& source, uint32_t pos);

}  // namespace pareto::tokenizer::jinja
