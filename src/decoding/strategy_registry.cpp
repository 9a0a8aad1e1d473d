// The table of strategies by name: a speculative drafter adds one line here and one file.
#include <string>

#include "decoding/autoregressive.h"
#include "decoding/ngram.h"
#include "decoding/strategy.h"

namespace pareto::decoding {
namespace {

struct Registered {
  std::string_view name;
  std::unique_ptr<DecodingStrategy> (*make)();
};

constexpr Registered kStrategies[] = {
    {"autoregressive", [] { return std::unique_ptr<DecodingStrategy>(new Autoregressive()); }},
    {"ngram", [] { return std::unique_ptr<DecodingStrategy>(new NgramStrategy()); }},
};

}  // namespace

std::vector<std::string_view> strategy_names() {
  std::vector<std::string_view> names;
  for (const Registered& r : kStrategies) names.push_back(r.name);
  return names;
}

Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name) {
  std::string valid;
  for (const Registered& r : kStrategies) {
    if (r.name == name) return r.make();
    valid += (valid.empty() ? "" : ", ") + std::string(r.name);
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown decoding strategy '", name,
                         "' (valid: ", valid, ")");
}

}  // namespace pareto::decoding
