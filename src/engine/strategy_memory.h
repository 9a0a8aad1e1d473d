// What drafters learn across requests (the n-gram cache, the bandit's statistics, draft lengths),
// kept per strategy name: requests of a registered strategy learn from each other, never from
// another strategy's run of the same prompt. (`pareto bench spec` runs every strategy on each
// prompt: with one cache for all, a strategy found the whole answer left there by the one before
// it.) All comma lists (custom bandits) share one set, so they do learn from each other; the sets
// are bounded by the registry whatever names clients send (a drafter listed twice is refused, so
// the distinct arm lists are too).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "decoding/bandit.h"
#include "decoding/draft_length.h"
#include "decoding/ngram.h"
#include "decoding/strategy.h"

namespace pareto::engine {

class StrategyMemories {
 public:
  // The strategy `name` made with `context` and that name's memories (kept only when the
  // strategy is made). Safe on several threads at once (requests are submitted from any thread);
  // the strategies then use their memories on the step thread only.
  Result<std::unique_ptr<decoding::DecodingStrategy>> make(const std::string& name,
                                                           decoding::StrategyContext context);
  // Sets of memories held.
  size_t size() const;

 private:
  struct Memory {
    decoding::NgramCache ngram;
    decoding::BanditMemory bandit;
    decoding::DraftLengthMemory lengths;
  };
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Memory>> memories_;
};

}  // namespace pareto::engine
