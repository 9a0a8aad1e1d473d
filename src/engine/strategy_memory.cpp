#include "engine/strategy_memory.h"

#include <utility>

namespace pareto::engine {

Result<std::unique_ptr<decoding::DecodingStrategy>> StrategyMemories::make(
    const std::string& name, decoding::StrategyContext context) {
  // Under the lock: making a bandit or a sized drafter inserts into its memory's maps.
  std::lock_guard<std::mutex> lock(mutex_);
  std::string key = name.find(',') == std::string::npos ? name : ",";
  std::unique_ptr<Memory> fresh;
  Memory* memory = nullptr;
  if (const auto it = memories_.find(key); it != memories_.end()) {
    memory = it->second.get();
  } else {
    fresh = std::make_unique<Memory>();
    memory = fresh.get();
  }
  context.ngram_cache = &memory->ngram;
  context.bandit_memory = &memory->bandit;
  context.draft_length_memory = &memory->lengths;
  PARETO_TRY(auto strategy, decoding::make_strategy(name, context));
  if (fresh) memories_.emplace(std::move(key), std::move(fresh));
  return strategy;
}

size_t StrategyMemories::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return memories_.size();
}

}  // namespace pareto::engine
