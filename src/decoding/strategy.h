// Decoding strategies: how a sequence turns logits into accepted tokens, one engine step at a
// time. A strategy never runs the model. Each step the engine asks every running sequence's
// strategy what to evaluate (propose), evaluates every sequence's entries in ONE batched forward,
// and hands each strategy the logit rows of its entries (accept); the strategy appends what it
// accepts to the sequence and rolls the KV cache back to match. Autoregressive decoding proposes
// one entry; a speculative strategy proposes the pending token plus a chain or tree of drafts and
// accepts the longest valid prefix (rolling the rejected entries' KV back with
// KvCache::truncate / erase). Strategies are registered by name (make_strategy).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "sampling/sampler.h"

namespace pareto::decoding {

// A sequence as a strategy sees it. Invariant between steps, once its prompt is evaluated: the
// cache holds tokens[0, n - 1) and the last token is pending (its logits give the next token).
struct SequenceState {
  std::vector<int32_t> tokens;  // the prompt, then every accepted token
  int n_prompt = 0;
  kv::KvCache cache;
  sampling::SamplerChain sampler{nullptr};
  uint64_t seed = 0;  // the request's sampling seed (drafters that sample derive theirs from it)
  int n_vocab = 0;
  // Seconds of the forward whose rows the next accept() receives, when its caller timed it (the
  // scheduler); 0: unknown, and a strategy times from its propose to its accept instead, which in
  // a batch also counts the other sequences' proposing (a draft model's forwards).
  double forward_seconds = 0;
  // The residual stream of the entries of that forward ([entries][n_layers + 1][dim], in the
  // order proposed), when the strategy wants_residuals(); else empty.
  std::span<const float> residuals;

  std::span<const int32_t> generated() const {
    return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(n_prompt));
  }
};

// What speculation did for one request (all zero for plain decoding).
struct SpeculationStats {
  int64_t steps = 0;         // verifications (target forwards) of this sequence after its prompt
  int64_t drafted = 0;       // draft tokens proposed
  int64_t accepted = 0;      // of them, accepted
  double draft_seconds = 0;  // spent in the drafter (propose and its bookkeeping)
  // The target forwards: SequenceState::forward_seconds where the caller timed them, else from the
  // end of propose to accept.
  double verify_seconds = 0;
  // By draft position i (0 = the token after the pending one): proposed at i, accepted at i.
  std::vector<int64_t> drafted_at, accepted_at;
};

class DecodingStrategy {
 public:
  virtual ~DecodingStrategy() = default;
  virtual std::string_view name() const = 0;

  // Appends the entries to evaluate for `seq` this step (their `seq` field is set by the engine;
  // logit rows come back in entry order for the entries that ask for them). At most `max_entries`
  // entries (>= 1): the room left in the context and in the step's token budget.
  virtual void propose(const SequenceState& seq, int max_entries,
                       std::vector<model::BatchEntry>& entries) = 0;

  // `logits` holds [rows, n_vocab]: the rows of the entries the last propose() asked for, or, the
  // first time, the last prompt token's row. Appends the accepted tokens (at least one) to
  // seq.tokens, rolls seq.cache back to the accepted ones, and returns how many it appended.
  virtual int accept(SequenceState& seq, std::span<const float> logits) = 0;

  // Speculative strategies report what they drafted and accepted; others return nullptr.
  virtual const SpeculationStats* speculation() const { return nullptr; }
  // Whether accept() wants the residual stream of the entries it proposed (SequenceState::
  // residuals): self-speculation re-chooses its skipped layers from them (CLaSp).
  virtual bool wants_residuals() const { return false; }
};

struct StrategyContext;

// The registered strategies: "autoregressive", and the speculative ones ("ngram", "sam", "draft",
// "draft-adaptive", "tree", "bandit"; the draft-model ones need context.draft_model). The error
// lists the valid names.
Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name,
                                                        const StrategyContext& context);
Result<std::unique_ptr<DecodingStrategy>> make_strategy(std::string_view name);
std::vector<std::string_view> strategy_names();

}  // namespace pareto::decoding
