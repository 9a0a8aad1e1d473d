// Compiled with only include/ on the include path (tests/CMakeLists.txt): the public API must not
// reach into src/. A build failure here is the test.
#include "pareto/pareto.h"
#include "pareto/result.h"

namespace {
[[maybe_unused]] pareto::Result<int> use_api(const pareto::LoadOptions& options) {
  if (options.n_threads < 0) {
    return tl::unexpected(pareto::Error{"negative", pareto::ErrorCode::kInvalidArgument});
  }
  return static_cast<int>(pareto::stop_reason_name(pareto::StopReason::kMaxTokens).size());
}
}  // namespace
