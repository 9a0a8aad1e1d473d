// Attribute and item access with jinja2's sandboxed getattr / getitem rules, and calls (builtins,
// bound methods, macros).
#include <algorithm>

#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_unicode.h"

namespace pareto::tokenizer::jinja {

namespace {

std::string object_name(const Value& v) {
  return v.is_none() ? "None" : std::string(v.type_name()) + " object";
}

Value bound_method(const Value& self, const std::string& name) {
  auto fn = std::make_shared<Callable>();
  fn->kind = Callable::Kind::kMethod;
  fn->name = name;
  fn->self = self;
  return Value::callable(std::move(fn));
}

Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(cat("'", object_name(obj), "' has no attribute '", name, "'"));
}

Result<Value> loop_attribute(const Value& obj, const std::string& name) {
  const LoopState& l = obj.loop();
  const auto n = static_cast<int64_t>(l.items->size());
  const auto i = static_cast<int64_t>(l.index);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(l.depth);
  if (name == "depth0") return Value::integer(l.depth - 1);
  if (name == "previtem") {
    return i > 0 ? (*l.items)[static_cast<size_t>(i - 1)]
                 : Value::undefined("there is no previous item");
  }
  if (name == "nextitem") {
    return i + 1 < n ? (*l.items)[static_cast<size_t>(i + 1)]
                     : Value::undefined("there is no next item");
  }
  if (is_method(obj, name)) return bound_method(obj, name);
  return no_attribute(obj, name);
}

}  // namespace

Result<Value> Evaluator::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.is_loop()) return loop_attribute(obj, name);
  if (is_method(obj, name)) return bound_method(obj, name);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find(name)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = obj.ns().find(name)) return *v;
  }
  return no_attribute(obj, name);
}

Result<Value> Evaluator::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find(key)) return *v;
  } else if ((obj.is_sequence() || obj.is_string()) && key.is_integral()) {
    const int64_t n = obj.is_string() ? static_cast<int64_t>(utf8_length(obj.str()))
                                      : static_cast<int64_t>(obj.items().size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      if (!obj.is_string()) return obj.items()[static_cast<size_t>(i)];
      size_t pos = 0;
      size_t len = 0;
      for (int64_t k = 0; k <= i; ++k) {
        pos += len;
        utf8_at(obj.str(), pos, &len);
      }
      std::string ch = obj.str().substr(pos, len);
      return obj.is_markup() ? Value::markup(std::move(ch)) : Value::string(std::move(ch));
    }
    return Value::undefined(
        cat("'", object_name(obj), "' has no element ", std::to_string(key.as_int())));
  }
  if (key.is_string()) return getattr(obj, key.str());
  return Value::undefined(cat("'", object_name(obj), "' has no element ", to_repr(key)));
}

Result<Value> Evaluator::call(const Value& callee, Args args) {
  if (callee.is_undefined()) {
    return make_error_code(ErrorCode::kUnsupported, callee.str(), " (not a callable)");
  }
  if (!callee.is_callable()) {
    return make_error_code(ErrorCode::kUnsupported, "'", callee.type_name(),
                           "' object is not callable");
  }
  const Callable& fn = callee.fn();
  switch (fn.kind) {
    case Callable::Kind::kBuiltin:
      return call_global(*this, fn.name, std::move(args));
    case Callable::Kind::kMethod:
      return call_method(*this, fn.self, fn.name, std::move(args));
    case Callable::Kind::kMacro:
      return call_macro(fn, std::move(args));
  }
  return Value();
}

Result<Value> Evaluator::call_macro(const Callable& macro, Args args) {
  const Stmt& def = *macro.macro;
  if (!macro.closure) return make_error("macro '", macro.name, "' called after the render ended");
  auto scope = std::make_shared<Scope>();
  scope->parent = macro.closure;
  const size_t n = def.params.size();
  if (args.pos.size() > n && !def.uses_varargs) {
    return make_error_code(ErrorCode::kUnsupported, "macro '", macro.name, "' takes not more than ",
                           n, " argument(s)");
  }
  std::vector<bool> given(n, false);
  for (size_t i = 0; i < n && i < args.pos.size(); ++i) {
    scope->set(def.params[i], std::move(args.pos[i]));
    given[i] = true;
  }
  Dict extra_kw;
  for (auto& [k, v] : args.kw) {
    auto it = std::find(def.params.begin(), def.params.end(), k);
    if (it == def.params.end()) {
      if (!def.uses_kwargs) {
        return make_error_code(ErrorCode::kUnsupported, "macro '", macro.name,
                               "' takes no keyword argument '", k, "'");
      }
      extra_kw.set(Value::string(k), std::move(v));
      continue;
    }
    const auto idx = static_cast<size_t>(it - def.params.begin());
    if (given[idx]) {
      return make_error_code(ErrorCode::kUnsupported, "macro '", macro.name,
                             "' got multiple values for argument '", k, "'");
    }
    scope->set(k, std::move(v));
    given[idx] = true;
  }
  for (size_t i = 0; i < n; ++i) {
    if (given[i]) continue;
    if (def.exprs[i]) {
      PARETO_TRY(Value v, eval(*def.exprs[i], scope));
      scope->set(def.params[i], std::move(v));
    } else {
      scope->set(def.params[i],
                 Value::undefined(cat("parameter '", def.params[i], "' was not provided")));
    }
  }
  if (def.uses_varargs) {
    List rest;
    for (size_t i = n; i < args.pos.size(); ++i) rest.push_back(std::move(args.pos[i]));
    scope->set("varargs", Value::tuple(std::move(rest)));
  }
  if (def.uses_kwargs) scope->set("kwargs", Value::dict(std::move(extra_kw)));
  DepthGuard guard(&depth_);
  PARETO_RETURN_IF_ERROR(enter(def.pos));
  std::string out;
  PARETO_TRY(Flow flow, exec_body(def.body, scope, out));
  (void)flow;
  return Value::string(std::move(out));
}

}  // namespace pareto::tokenizer::jinja
