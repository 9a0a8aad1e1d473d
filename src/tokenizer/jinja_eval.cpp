#include "tokenizer/jinja_eval.h"

#include <algorithm>

#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    for (const auto& [k, v] : s->vars) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

tl::unexpected<Error> undefined_error(const Value& undefined) {
  return make_error(undefined.str().empty() ? "undefined value" : undefined.str());
}

Evaluator::Evaluator(const Program& program, const ChatTemplateLimits& limits)
    : program_(program), limits_(limits) {}

Evaluator::~Evaluator() {
  // Macros hold their defining scope and namespaces may hold themselves: break the cycles.
  for (const auto& m : macros_) m->closure.reset();
  for (const auto& ns : namespaces_) ns->attrs.clear();
}

Result<std::string> Evaluator::render(const Value& context) {
  auto top = std::make_shared<Scope>();
  if (context.is_dict()) {
    for (const auto& [k, v] : context.dict().entries) {
      if (k.is_string()) top->set(k.str(), v);
    }
  }
  std::string out;
  PARETO_TRY(Flow flow, exec_body(program_.body, top, out));
  (void)flow;
  return out;
}

Status Evaluator::enter(uint32_t pos) {
  if (++steps_ > limits_.max_steps) {
    located_ = true;
    return make_error("chat template: ", describe_pos(program_.source, pos),
                      ": evaluation exceeds ", limits_.max_steps, " steps");
  }
  if (depth_ > limits_.max_depth) {
    located_ = true;
    return make_error("chat template: ", describe_pos(program_.source, pos),
                      ": evaluation nested deeper than ", limits_.max_depth);
  }
  return ok();
}

Status Evaluator::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    return make_error("evaluation exceeds ", limits_.max_steps, " steps");
  return ok();
}

Status Evaluator::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return make_error("text longer than ", limits_.max_output_bytes, " bytes");
  }
  return ok();
}

Status Evaluator::append(std::string& out, std::string_view text) const {
  PARETO_RETURN_IF_ERROR(check_size(out.size() + text.size()));
  out += text;
  return ok();
}

Value Evaluator::new_namespace() {
  auto ns = std::make_shared<Namespace>();
  namespaces_.push_back(ns);
  return Value::ns(std::move(ns));
}

tl::unexpected<Error> Evaluator::raise(const std::string& message) {
  located_ = true;
  return make_error("chat template: ", message);
}

Error Evaluator::locate(Error e, uint32_t pos) {
  if (!located_) {
    e.message = cat("chat template: ", describe_pos(program_.source, pos), ": ", e.message);
    located_ = true;
  }
  return e;
}

// --- statements ------------------------------------------------------------------------------

Result<Evaluator::Flow> Evaluator::exec_body(const Body& body, const ScopePtr& scope,
                                             std::string& out) {
  for (const StmtPtr& s : body) {
    PARETO_TRY(Flow flow, exec(*s, scope, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Result<std::string> Evaluator::capture(const Body& body, const ScopePtr& scope) {
  auto inner = std::make_shared<Scope>();
  inner->parent = scope;
  std::string out;
  PARETO_TRY(Flow flow, exec_body(body, inner, out));
  (void)flow;
  return out;
}

Result<Evaluator::Flow> Evaluator::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  DepthGuard guard(&depth_);
  PARETO_RETURN_IF_ERROR(enter(s.pos));
  auto fail = [&](Error e) { return tl::unexpected<Error>(locate(std::move(e), s.pos)); };
  switch (s.kind) {
    case StmtKind::kText:
      if (auto st = append(out, s.text); !st) return fail(st.error());
      return Flow::kNormal;
    case StmtKind::kOutput:
      for (const ExprPtr& e : s.exprs) {
        PARETO_TRY(Value v, eval(*e, scope));
        const size_t before = out.size();
        append_str(out, v);
        if (auto st = check_size(out.size()); !st) {
          out.resize(before);
          return fail(st.error());
        }
      }
      return Flow::kNormal;
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches) {
        PARETO_TRY(Value c, eval(*cond, scope));
        if (c.truthy()) return exec_body(body, scope, out);
      }
      return exec_body(s.else_body, scope, out);
    case StmtKind::kFor:
      return exec_for(s, scope, out);
    case StmtKind::kSet: {
      PARETO_TRY(Value v, eval(*s.expr, scope));
      if (auto st = assign(s.target, std::move(v), scope); !st) return fail(st.error());
      return Flow::kNormal;
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      PARETO_TRY(std::string text, capture(s.body, scope));
      Value v = Value::string(std::move(text));
      if (s.expr) {
        PARETO_TRY(v, eval_filter(*s.expr, scope, &v));
      }
      if (s.kind == StmtKind::kFilterBlock) {
        const size_t before = out.size();
        append_str(out, v);
        if (auto st = check_size(out.size()); !st) {
          out.resize(before);
          return fail(st.error());
        }
      } else if (auto st = assign(s.target, std::move(v), scope); !st) {
        return fail(st.error());
      }
      return Flow::kNormal;
    }
    case StmtKind::kMacro: {
      auto m = std::make_shared<Callable>();
      m->kind = Callable::Kind::kMacro;
      m->name = s.text;
      m->macro = &s;
      m->closure = scope;
      macros_.push_back(m);
      scope->set(s.text, Value::callable(std::move(m)));
      return Flow::kNormal;
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (size_t i = 0; i < s.targets.size(); ++i) {
        PARETO_TRY(Value v, eval(*s.exprs[i], scope));
        if (auto st = bind(s.targets[i], v, *inner); !st) return fail(st.error());
      }
      PARETO_TRY(Flow flow, exec_body(s.body, inner, out));
      return flow;
    }
    case StmtKind::kScope: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      PARETO_TRY(Flow flow, exec_body(s.body, inner, out));
      return flow;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
  }
  return Flow::kNormal;
}

Result<Evaluator::Flow> Evaluator::exec_for(const Stmt& s, const ScopePtr& scope,
                                            std::string& out) {
  auto fail = [&](Error e) { return tl::unexpected<Error>(locate(std::move(e), s.pos)); };
  PARETO_TRY(Value iterable, eval(*s.expr, scope));
  auto items = iterate(iterable);
  if (!items) return fail(items.error());
  if (s.cond) {
    List kept;
    for (Value& item : *items) {
      PARETO_RETURN_IF_ERROR(enter(s.pos));
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      if (auto st = bind(s.target, item, *probe); !st) return fail(st.error());
      PARETO_TRY(Value c, eval(*s.cond, probe));
      if (c.truthy()) kept.push_back(std::move(item));
    }
    *items = std::move(kept);
  }
  // jinja2 runs the else block unless an iteration reached the end of the body (its flag is reset
  // there, after the body: a continue or break skips it).
  bool completed = false;
  auto seq = std::make_shared<const List>(std::move(*items));
  for (size_t i = 0; i < seq->size(); ++i) {
    PARETO_RETURN_IF_ERROR(enter(s.pos));
    auto iter_scope = std::make_shared<Scope>();
    iter_scope->parent = scope;
    if (auto st = bind(s.target, (*seq)[i], *iter_scope); !st) return fail(st.error());
    auto state = std::make_shared<LoopState>();
    state->items = seq;
    state->index = i;
    iter_scope->set("loop", Value::loop(std::move(state)));
    PARETO_TRY(Flow flow, exec_body(s.body, iter_scope, out));
    if (flow == Flow::kBreak) break;
    if (flow == Flow::kNormal) completed = true;
  }
  if (!completed && !s.else_body.empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    return exec_body(s.else_body, inner, out);  // a break there belongs to an outer loop
  }
  return Flow::kNormal;
}

Status Evaluator::bind(const Target& target, const Value& value, Scope& scope) {
  if (!target.tuple) {
    scope.set(target.names[0], value);
    return ok();
  }
  PARETO_TRY(List parts, iterate(value));
  if (value.is_undefined()) return undefined_error(value);
  if (parts.size() != target.names.size()) {
    return make_error_code(ErrorCode::kUnsupported, "cannot unpack ", parts.size(), " values into ",
                           target.names.size(), " names");
  }
  for (size_t i = 0; i < parts.size(); ++i) scope.set(target.names[i], std::move(parts[i]));
  return ok();
}

Status Evaluator::assign(const Target& target, Value value, const ScopePtr& scope) {
  if (target.ns_attr.empty()) return bind(target, value, *scope);
  const Value* ns = scope->find(target.names[0]);
  if (!ns || !ns->is_namespace()) {
    return make_error_code(ErrorCode::kUnsupported, "cannot assign attribute '", target.ns_attr,
                           "' on non-namespace object '", target.names[0], "'");
  }
  ns->ns().set(target.ns_attr, std::move(value));
  return ok();
}

// --- expressions -----------------------------------------------------------------------------

Value Evaluator::lookup(const std::string& name, const Scope& scope) const {
  if (const Value* v = scope.find(name)) return *v;
  if (is_global_function(name)) {
    auto fn = std::make_shared<Callable>();
    fn->kind = Callable::Kind::kBuiltin;
    fn->name = name;
    return Value::callable(std::move(fn));
  }
  return Value::undefined(cat("'", name, "' is undefined"));
}

Result<Value> Evaluator::eval(const Expr& e, const ScopePtr& scope) {
  DepthGuard guard(&depth_);
  PARETO_RETURN_IF_ERROR(enter(e.pos));
  auto v = eval_inner(e, scope);
  if (!v) return tl::unexpected<Error>(locate(std::move(v).error(), e.pos));
  Status st = ok();
  if (v->is_string()) {
    st = check_size(v->str().size());
    if (st && v->str().size() > 256) st = charge(v->str().size() / 64);
  } else if (v->depth() > kMaxValueDepth) {
    st = make_error("value nested deeper than ", kMaxValueDepth);
  } else if (v->weight() > kMaxValueWeight) {
    st = make_error("value with more than ", kMaxValueWeight, " items");
  }
  if (!st) return tl::unexpected<Error>(locate(std::move(st).error(), e.pos));
  return v;
}

Result<Args> Evaluator::eval_args(const Expr& e, const ScopePtr& scope) {
  Args args;
  for (const ExprPtr& item : e.items) {
    PARETO_TRY(Value v, eval(*item, scope));
    args.pos.push_back(std::move(v));
  }
  for (const auto& [k, item] : e.kwargs) {
    PARETO_TRY(Value v, eval(*item, scope));
    args.kw.emplace_back(k, std::move(v));
  }
  return args;
}

Result<Value> Evaluator::eval_filter(const Expr& e, const ScopePtr& scope, const Value* input) {
  Value target;
  if (!e.a) {
    target = *input;
  } else if (input && e.a->kind == ExprKind::kFilter) {
    PARETO_TRY(target, eval_filter(*e.a, scope, input));
  } else {
    PARETO_TRY(target, eval(*e.a, scope));
  }
  if (e.defer_unknown) {
    const bool known = filter_support(e.name) == Support::kUnsupported;
    return make_error_code(ErrorCode::kUnsupported, known ? "filter '" : "unknown filter '", e.name,
                           known ? "' is not supported" : "'");
  }
  PARETO_TRY(Args args, eval_args(e, scope));
  auto v = apply_filter(*this, e.name, target, std::move(args));
  if (!v) return tl::unexpected<Error>(locate(std::move(v).error(), e.pos));
  return v;
}

Result<Value> Evaluator::eval_compare(const Expr& e, const ScopePtr& scope) {
  PARETO_TRY(Value left, eval(*e.a, scope));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    PARETO_TRY(Value right, eval(*e.items[i], scope));
    bool result = false;
    switch (e.ops[i]) {
      case Op::kEq:
        result = equals(left, right);
        break;
      case Op::kNe:
        result = !equals(left, right);
        break;
      case Op::kIn:
      case Op::kNotIn: {
        PARETO_TRY(bool found, contains(right, left));
        result = (e.ops[i] == Op::kIn) == found;
        break;
      }
      default: {
        if (left.is_undefined()) return undefined_error(left);
        if (right.is_undefined()) return undefined_error(right);
        PARETO_TRY(int c, compare(left, right));
        const Op op = e.ops[i];
        result = op == Op::kLt ? c < 0 : op == Op::kLe ? c <= 0 : op == Op::kGt ? c > 0 : c >= 0;
      }
    }
    if (!result) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Result<Value> Evaluator::slice(const Value& obj, const Expr& e, const ScopePtr& scope) {
  Value parts[3] = {Value::none(), Value::none(), Value::none()};
  for (size_t i = 0; i < 3 && i < e.items.size(); ++i) {
    if (e.items[i]) {
      PARETO_TRY(parts[i], eval(*e.items[i], scope));
    }
  }
  return slice_value(obj, parts[0], parts[1], parts[2]);
}

Result<Value> Evaluator::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.value;
    case ExprKind::kName:
      return lookup(e.name, *scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      items.reserve(e.items.size());
      for (const ExprPtr& item : e.items) {
        PARETO_TRY(Value v, eval(*item, scope));
        items.push_back(std::move(v));
      }
      return e.kind == ExprKind::kList ? Value::list(std::move(items))
                                       : Value::tuple(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        PARETO_TRY(Value k, eval(*e.items[i], scope));
        PARETO_TRY(Value v, eval(*e.items[i + 1], scope));
        if (k.is_list() || k.is_dict() || k.is_undefined()) {
          return make_error_code(ErrorCode::kUnsupported, "unhashable type: '", k.type_name(), "'");
        }
        d.set(std::move(k), std::move(v));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetAttr: {
      PARETO_TRY(Value obj, eval(*e.a, scope));
      return getattr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      PARETO_TRY(Value obj, eval(*e.a, scope));
      PARETO_TRY(Value key, eval(*e.b, scope));
      return getitem(obj, key);
    }
    case ExprKind::kSlice: {
      if (!e.a) return make_error_code(ErrorCode::kUnsupported, "a slice inside a tuple index");
      PARETO_TRY(Value obj, eval(*e.a, scope));
      return slice(obj, e, scope);
    }
    case ExprKind::kCall: {
      PARETO_TRY(Value callee, eval(*e.a, scope));
      PARETO_TRY(Args args, eval_args(e, scope));
      return call(callee, std::move(args));
    }
    case ExprKind::kFilter:
      return eval_filter(e, scope, nullptr);
    case ExprKind::kTest: {
      PARETO_TRY(Value v, eval(*e.a, scope));
      if (e.defer_unknown) {
        const bool known = test_support(e.name) == Support::kUnsupported;
        return make_error_code(ErrorCode::kUnsupported, known ? "test '" : "unknown test '", e.name,
                               known ? "' is not supported" : "'");
      }
      PARETO_TRY(Args args, eval_args(e, scope));
      PARETO_TRY(bool r, apply_test(*this, e.name, v, std::move(args)));
      return Value::boolean(r);
    }
    case ExprKind::kNeg: {
      PARETO_TRY(Value v, eval(*e.a, scope));
      return negate(v);
    }
    case ExprKind::kPos: {
      PARETO_TRY(Value v, eval(*e.a, scope));
      if (v.is_undefined()) return undefined_error(v);
      if (!v.is_number()) {
        return make_error_code(ErrorCode::kUnsupported, "bad operand type for unary +: '",
                               v.type_name(), "'");
      }
      return v.is_bool() ? Value::integer(v.as_int()) : v;
    }
    case ExprKind::kNot: {
      PARETO_TRY(Value v, eval(*e.a, scope));
      return Value::boolean(!v.truthy());
    }
    case ExprKind::kBinary: {
      PARETO_TRY(Value a, eval(*e.a, scope));
      PARETO_TRY(Value b, eval(*e.b, scope));
      return binary_op(*this, e.op, a, b);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const ExprPtr& item : e.items) {
        PARETO_TRY(Value v, eval(*item, scope));
        append_str(s, v);
        PARETO_RETURN_IF_ERROR(check_size(s.size()));
      }
      return Value::string(std::move(s));
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      PARETO_TRY(Value a, eval(*e.a, scope));
      if (a.truthy() == (e.kind == ExprKind::kOr)) return a;
      return eval(*e.b, scope);
    }
    case ExprKind::kCompare:
      return eval_compare(e, scope);
    case ExprKind::kCondExpr: {
      PARETO_TRY(Value c, eval(*e.a, scope));
      if (c.truthy()) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined("the inline if-expression on " +
                              describe_pos(program_.source, e.pos) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

}  // namespace pareto::tokenizer::jinja
