// The evaluator of a parsed template: one Evaluator per render (it holds the render's mutable
// state: scopes, namespaces, counters), so a Program can be rendered from many threads at once.
//
// Scopes follow jinja2: the top level holds the context and its {% set %}s; every iteration of
// a for loop, a macro call, a with block and a set/filter block gets a child scope, so a set in
// there is not seen outside (a namespace attribute is); an if does not open a scope.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_value.h"

namespace pareto::tokenizer::jinja {

// Containers deeper than this are refused (printing, comparing and freeing them recurse).
inline constexpr uint32_t kMaxValueDepth = 512;
// Containers with more values than this (counting shared parts per use) are refused.
inline constexpr uint32_t kMaxValueWeight = uint32_t{1} << 24;

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const;  // here or in a parent
  void set(const std::string& name, Value value);  // here
};

class Evaluator {
 public:
  Evaluator(const Program& program, const ChatTemplateLimits& limits);
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // `context` is a dict; its keys become the top-level variables.
  Result<std::string> render(const Value& context);

  // For the builtins.
  Result<Value> call(const Value& callee, Args args);
  Result<Value> getattr(const Value& obj, const std::string& name);
  Result<Value> getitem(const Value& obj, const Value& key);
  Status charge(uint64_t steps);  // work done outside the evaluator's own counting
  Status check_size(size_t bytes) const;
  size_t max_output() const { return limits_.max_output_bytes; }
  Value new_namespace();
  // raise_exception: an error that reaches the caller with exactly this message.
  tl::unexpected<Error> raise(const std::string& message);

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using ScopePtr = std::shared_ptr<Scope>;

  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    int* depth;
  };

  Status enter(uint32_t pos);  // counts a step and checks the depth
  Error locate(Error e, uint32_t pos);
  Status append(std::string& out, std::string_view text) const;

  Result<Flow> exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Result<Flow> exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  Result<Flow> exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  Status assign(const Target& target, Value value, const ScopePtr& scope);
  Status bind(const Target& target, const Value& value, Scope& scope);
  Result<std::string> capture(const Body& body, const ScopePtr& scope);

  Result<Value> eval(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_inner(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_filter(const Expr& e, const ScopePtr& scope, const Value* input);
  Result<Args> eval_args(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_compare(const Expr& e, const ScopePtr& scope);
  Result<Value> slice(const Value& obj, const Expr& e, const ScopePtr& scope);
  Result<Value> call_macro(const Callable& macro, Args args);
  Value lookup(const std::string& name, const Scope& scope) const;

  const Program& program_;
  const ChatTemplateLimits limits_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  bool located_ = false;  // the error being returned already names its position
  std::vector<std::shared_ptr<const Callable>> macros_;
  std::vector<std::shared_ptr<Namespace>> namespaces_;
};

// Python operators on values (jinja_eval_ops.cpp). Errors carry no position.
Result<Value> binary_op(Evaluator& ev, Op op, const Value& a, const Value& b);
Result<Value> negate(const Value& v);
// Python slicing of a list, tuple or str.
Result<Value> slice_value(const Value& obj, const Value& start, const Value& stop,
                          const Value& step);
// The items a for loop (or list()) goes over: list and tuple items, str code points, dict keys;
// nothing for Undefined; a TypeError otherwise.
Result<List> iterate(const Value& v);
// An error for using an Undefined where jinja2 raises UndefinedError.
tl::unexpected<Error> undefined_error(const Value& undefined);

}  // namespace pareto::tokenizer::jinja
