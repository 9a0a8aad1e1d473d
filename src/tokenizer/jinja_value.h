// Values of the Jinja interpreter, with Python's semantics: None, bool, int (64-bit; overflow is
// an error), float, str (UTF-8; or markupsafe's Markup), list, tuple, generator, dict
// (insertion-ordered), jinja2's Undefined (which carries the reason it is undefined),
// namespace(), callables (builtins, bound methods, macros) and the loop object. Lists, tuples and dicts are immutable (the sandbox jinja2 runs in for HF
// refuses to modify them) and shared; a namespace is the one mutable object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pareto::tokenizer::jinja {

class Value;
using List = std::vector<Value>;
struct Dict;
struct Namespace;
struct Callable;
struct LoopState;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kGenerator,  // what jinja2's map, select, unique, ... return: iterable, always true, no len()
    kDict,
    kNamespace,
    kCallable,
    kLoop,
  };

  Value() = default;  // Undefined
  static Value undefined(std::string reason) {
    Value v;
    v.s_ = std::move(reason);
    return v;
  }
  static Value none() { return Value(Kind::kNone); }
  static Value boolean(bool b) {
    Value v(Kind::kBool);
    v.i_ = b ? 1 : 0;
    return v;
  }
  static Value integer(int64_t i) {
    Value v(Kind::kInt);
    v.i_ = i;
    return v;
  }
  static Value number(double f) {
    Value v(Kind::kFloat);
    v.f_ = f;
    return v;
  }
  static Value string(std::string s) {
    Value v(Kind::kString);
    v.s_ = std::move(s);
    return v;
  }
  // markupsafe's Markup: a str marked safe (the safe and escape filters make one); adding a
  // plain str to it, formatting into it and its methods escape the plain text.
  static Value markup(std::string s) {
    Value v = string(std::move(s));
    v.i_ = 1;
    return v;
  }
  static Value list(List items);
  static Value tuple(List items);
  static Value generator(List items);
  static Value dict(Dict d);
  static Value ns(std::shared_ptr<Namespace> n);
  static Value callable(std::shared_ptr<const Callable> c);
  static Value loop(std::shared_ptr<const LoopState> l);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_integral() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }  // Python int
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return is_integral() || is_float(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && i_ != 0; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kTuple; }
  bool is_sequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_generator() const { return kind_ == Kind::kGenerator; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_loop() const { return kind_ == Kind::kLoop; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }  // bool or int
  double as_double() const { return is_float() ? f_ : static_cast<double>(i_); }
  const std::string& str() const { return s_; }  // string, or an undefined's reason
  const List& items() const;                     // list, tuple or generator
  std::shared_ptr<const List> items_ptr() const;
  const Dict& dict() const;
  Namespace& ns() const;
  const Callable& fn() const;
  const LoopState& loop() const;

  // Nesting of lists, tuples and dicts (0 for anything else), and the number of values inside
  // (1 for anything else; counting shared parts once per use, saturating). The evaluator bounds
  // both, so that printing, comparing and destroying a value neither recurses deeply nor takes
  // exponential time on a value built as [x, x] of [x, x] of ...
  uint32_t depth() const { return depth_; }
  uint32_t weight() const { return weight_; }

  // Python truthiness (Undefined is false).
  bool truthy() const;
  // "str", "int", "list", "dict", "NoneType", "Undefined", ... as Python's type(x).__name__.
  std::string_view type_name() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  uint32_t depth_ = 0;
  uint32_t weight_ = 1;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<const void> p_;  // List, Dict, Namespace, Callable or LoopState
};

struct Dict {
  std::vector<std::pair<Value, Value>> entries;  // insertion order, keys unique

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);  // replaces an equal key in place
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value value);
};

struct Stmt;   // jinja_ast.h
struct Scope;  // jinja_eval.h

struct Callable {
  enum class Kind : uint8_t { kBuiltin, kMethod, kMacro };
  Kind kind = Kind::kBuiltin;
  std::string name;             // the global function, method or macro name
  Value self;                   // kMethod: the object it is bound to
  const Stmt* macro = nullptr;  // kMacro: its definition
  // kMacro: the scope it was defined in. The evaluator resets it when the render ends, so that a
  // macro stored in its own scope does not keep the scope alive.
  mutable std::shared_ptr<Scope> closure;
};

// The `loop` variable of one iteration of a for loop.
struct LoopState {
  std::shared_ptr<const List> items;  // after the loop's `if` filter
  size_t index = 0;                   // 0-based
  int depth = 1;
};

// Concatenation of string pieces (std::string, string_view or C strings).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  ((out += std::string_view(parts)), ...);
  return out;
}

// Python ==, with 1 == 1.0 == True; lists and tuples never equal each other; dicts ignore order.
bool equals(const Value& a, const Value& b);

// Python's str() and repr() (the output of {{ x }} is str(x), except that Undefined prints "").
std::string to_str(const Value& v);
std::string to_repr(const Value& v);
void append_str(std::string& out, const Value& v);
std::string float_repr(double d);             // Python repr(float): 1.0, 1e+16, 1e-05, inf, nan
std::string html_escape(std::string_view s);  // markupsafe.escape: & < > ' "

}  // namespace pareto::tokenizer::jinja
