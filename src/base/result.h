// Result<T>: the error channel across module walls (tl::expected). Errors carry one message that
// names the object, what was expected and what was found.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace pareto {

struct Error {
  std::string message;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// `return make_error("gguf: ", path, ": bad magic");`
template <class... Args>
tl::unexpected<Error> make_error(const Args&... args) {
  return tl::unexpected<Error>(Error{str_cat(args...)});
}

inline Status ok() { return {}; }

}  // namespace pareto

#define PARETO_CONCAT_INNER(a, b) a##b
#define PARETO_CONCAT(a, b) PARETO_CONCAT_INNER(a, b)

// PARETO_TRY(auto x, expr): evaluates expr (a Result<T>), returns its error from the enclosing
// function if it failed, otherwise binds the value to `x`.
#define PARETO_TRY(decl, expr) PARETO_TRY_IMPL(PARETO_CONCAT(_pareto_r_, __LINE__), decl, expr)
#define PARETO_TRY_IMPL(tmp, decl, expr)                   \
  auto tmp = (expr);                                       \
  if (!tmp) return tl::unexpected<::pareto::Error>(std::move(tmp).error()); \
  decl = std::move(*tmp)

// PARETO_RETURN_IF_ERROR(expr): for Status-returning calls.
#define PARETO_RETURN_IF_ERROR(expr)                                          \
  do {                                                                        \
    auto _pareto_s = (expr);                                                  \
    if (!_pareto_s) return tl::unexpected<::pareto::Error>(std::move(_pareto_s).error()); \
  } while (0)
