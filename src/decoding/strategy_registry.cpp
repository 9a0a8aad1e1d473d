// The table of strategies by name: a speculative drafter adds one line here and one file.
#include <string>

#include "decoding/autoregressive.h"
#include "decoding/draft_model.h"
#include "decoding/ngram.h"
#include "decoding/speculative.h"
#include "decoding/strategy.h"
#include "decoding/suffix_automaton.h"

namespace pareto::decoding {
namespace {

using Made = Result<std::unique_ptr<DecodingStrategy>>;

Made speculative(std::unique_ptr<Drafter> drafter, const StrategyContext& c) {
  return std::unique_ptr<DecodingStrategy>(
      new SpeculativeStrategy(std::move(drafter), c.draft_max));
}

Made draft_model(const StrategyContext& c, bool adaptive) {
  if (c.draft_model == nullptr) {
    return make_error_code(ErrorCode::kInvalidArgument, "decoding strategy '",
                           adaptive ? "draft-adaptive" : "draft",
                           "' needs a draft model (load one: --draft-model FILE)");
  }
  return speculative(std::make_unique<DraftModelDrafter>(*c.draft_model, adaptive), c);
}

struct Registered {
  std::string_view name;
  Made (*make)(const StrategyContext&);
};

constexpr Registered kStrategies[] = {
    {"autoregressive",
     [](const StrategyContext&) -> Made {
       return std::unique_ptr<DecodingStrategy>(new Autoregressive());
     }},
    {"ngram",
     [](const StrategyContext& c) { return speculative(std::make_unique<NgramDrafter>(), c); }},
    {"sam",
     [](const StrategyContext& c) { return speculative(std::make_unique<SamDrafter>(), c); }},
    {"draft", [](const StrategyContext& c) { return draft_model(c, false); }},
    {"draft-adaptive", [](const StrategyContext& c) { return draft_model(c, true); }},
};

}  // namespace

std::vector<std::string_view> strategy_names() {
  std::vector<std::string_view> names;
  for (const Registered& r : kStrategies) names.push_back(r.name);
  return names;
}

Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name,
                                                        const StrategyContext& context) {
  std::string valid;
  for (const Registered& r : kStrategies) {
    if (r.name == name) return r.make(context);
    valid += (valid.empty() ? "" : ", ") + std::string(r.name);
  }
  return make_error_code(ErrorCode::kInvalidArgument, "unknown decoding strategy '", name,
                         "' (valid: ", valid, ")");
}

Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name) {
  return make_strategy(name, StrategyContext{});
}

}  // namespace pareto::decoding
