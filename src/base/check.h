// CHECK: for broken invariants (programming errors), never for bad input. Aborts with file:line.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pareto::detail {
[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "CHECK failed at %s:%d: %s %s\n", file, line, expr, msg ? msg : "");
  std::abort();
}
}  // namespace pareto::detail

#define PARETO_CHECK(cond) \
  ((cond) ? (void)0 : ::pareto::detail::check_failed(#cond, __FILE__, __LINE__, nullptr))
#define PARETO_CHECK_MSG(cond, msg) \
  ((cond) ? (void)0 : ::pareto::detail::check_failed(#cond, __FILE__, __LINE__, (msg)))
