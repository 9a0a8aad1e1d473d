// Result<T>, Error and ErrorCode are part of the public API (include/pareto/result.h); the
// macros below are internal conveniences for code that returns them.
#pragma once

#include "pareto/result.h"

#define PARETO_CONCAT_INNER(a, b) a##b
#define PARETO_CONCAT(a, b) PARETO_CONCAT_INNER(a, b)

// PARETO_TRY(auto x, expr): evaluates expr (a Result<T>), returns its error from the enclosing
// function if it failed, otherwise binds the value to `x`.
#define PARETO_TRY(decl, expr) PARETO_TRY_IMPL(PARETO_CONCAT(_pareto_r_, __LINE__), decl, expr)
#define PARETO_TRY_IMPL(tmp, decl, expr)                                    \
  auto tmp = (expr);                                                        \
  if (!tmp) return tl::unexpected<::pareto::Error>(std::move(tmp).error()); \
  decl = std::move(*tmp)

// PARETO_RETURN_IF_ERROR(expr): for Status-returning calls.
#define PARETO_RETURN_IF_ERROR(expr)                                                      \
  do {                                                                                    \
    auto _pareto_s = (expr);                                                              \
    if (!_pareto_s) return tl::unexpected<::pareto::Error>(std::move(_pareto_s).error()); \
  } while (0)
