// Drafters: the proposing half of speculative decoding. A drafter guesses how a sequence goes on
// (a chain of draft tokens after the pending one); SpeculativeStrategy (speculative.h) has the
// target verify the pending token and the whole chain in ONE batched forward and keeps the longest
// valid prefix. A drafter never sees the target's logits; it is told what was accepted, and keeps
// its own state (a draft model's KV cache, an automaton, statistics) in step with the sequence.
// Adding a drafter: one file with a class deriving from Drafter, one line in the registry
// (strategy_registry.cpp), and its test.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "base/thread_pool.h"
#include "decoding/strategy.h"
#include "kv/kv_pool.h"
#include "model/model.h"
#include "sampling/sampler.h"

namespace pareto::decoding {

// One proposal: the draft tokens in order (draft[0] follows the pending token). For a drafter
// that samples its tokens, q[i] is the processed distribution draft[i] was drawn from (what the
// modified rejection sampling of Leviathan et al. 2023 compares with the target's); empty q means
// the drafts are deterministic guesses (q one-hot on each token). A tree: parents[i] is the index
// of the draft token that token i follows (-1: the pending token), parents before children; empty
// parents: a chain. Trees are verified for greedy requests only (q empty).
struct Draft {
  std::vector<int32_t> tokens;
  std::vector<sampling::Candidates> q;
  std::vector<int32_t> parents;
  void clear() {
    tokens.clear();
    q.clear();
    parents.clear();
  }
};

// What the last verification found, reported to the drafter before its next draft.
struct Verification {
  int drafted = 0;            // tokens of the last draft
  int accepted = 0;           // of them, accepted
  double verify_seconds = 0;  // the target forward that verified them (shared with the batch)
  // The residual stream of the last entry the verification kept (the pending token, or the last
  // accepted draft token), [n_layers + 1][dim], for a drafter that wants_residuals() and a chain;
  // else empty.
  std::span<const float> residuals = {};
};

// Verification cost as measured: seconds ~ a + b x entries, least squares over the past
// verifications with exponentially decayed weights. b is what one more verified entry costs; a + b
// is one plain step (what an accepted token saves). Drafters size their drafts with it.
class VerifyCostFit {
 public:
  // decay: the weight of the past per verification (0.9: about the last ten count).
  explicit VerifyCostFit(double decay = 0.9) : decay_(decay) {}
  void add(int entries, double seconds) {
    const double x = entries;
    n_ = decay_ * n_ + 1;
    sx_ = decay_ * sx_ + x;
    sy_ = decay_ * sy_ + seconds;
    sxx_ = decay_ * sxx_ + x * x;
    sxy_ = decay_ * sxy_ + x * seconds;
  }
  // Three verifications measured (the decayed count passes 2 at the third).
  bool ready() const { return n_ >= 2; }
  double per_entry() const {
    const double det = n_ * sxx_ - sx_ * sx_;
    return det > 1e-12 ? std::max((n_ * sxy_ - sx_ * sy_) / det, 0.0) : 0.0;
  }
  double step() const {
    return n_ > 0 ? std::max((sy_ - per_entry() * sx_) / n_, 0.0) + per_entry() : 0.0;
  }

 private:
  double decay_;
  double n_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string_view name() const = 0;
  // Fills `out` with at most `max_tokens` (>= 0) tokens continuing seq.tokens. An empty draft is
  // fine (the step is then a plain decode).
  virtual void draft(const SequenceState& seq, int max_tokens, Draft& out) = 0;
  // Called after each verification, once seq.tokens holds what was accepted. A free_to_ask()
  // drafter in a bandit is also told of its unplayed drafts' scores, steps later, with the
  // verification time estimated and no residuals (bandit.h).
  virtual void verified(const SequenceState& seq, const Verification& v) {
    (void)seq;
    (void)v;
  }
  // Tokens of seq.tokens this drafter has yet to take into costly state of its own (the draft
  // model's cache, after steps it sat out or at a request's start): its next draft first pays
  // for them, once. 0 for drafters whose state follows the sequence at little cost.
  virtual int lag(const SequenceState& seq) const {
    (void)seq;
    return 0;
  }
  // Takes in now what it lags by, all but the pending token (which every draft takes in), so that
  // the next draft pays only its running cost; returns the seconds that took (0: nothing to do).
  // The bandit times catch-ups apart from drafts: they are the price of switching to an arm, not
  // of playing it.
  virtual double catch_up(const SequenceState& seq) {
    (void)seq;
    return 0;
  }
  // Whether verified() wants Verification::residuals.
  virtual bool wants_residuals() const { return false; }
  // Whether a draft costs next to nothing and its state follows the text alone (model-free
  // lookups): a bandit may then ask it every step without playing it and score the draft against
  // the tokens the sequence goes on with (full information, bandit.h).
  virtual bool free_to_ask() const { return false; }
};

// Draws from a drafter's processed distribution q with the drafter's own RNG (independent of the
// acceptance draws): the candidate whose cumulative probability first exceeds a uniform draw, or
// null when rounding leaves the draw past them all (callers then take the last candidate).
template <class Rng>
const sampling::Candidate* draw_from(const sampling::Candidates& q, Rng& rng) {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  double cumulative = 0;
  for (const sampling::Candidate& c : q.items) {
    cumulative += c.prob;
    if (u < cumulative) return &c;
  }
  return nullptr;
}

// A second model that drafts for the target (drafters "draft" and "draft-adaptive"): loaded once,
// shared by every sequence; each sequence's drafter keeps its own cache in `kv_pool`.
struct DraftModelResources {
  const model::Model* model = nullptr;
  std::shared_ptr<kv::KvPool> kv_pool;
  ThreadPool* pool = nullptr;
  // Feeds of at least kBatchPoolEntries entries (a prompt, a long accepted run) run here instead:
  // the target's threads, idle while a draft is made. Null: `pool` for every feed.
  ThreadPool* batch_pool = nullptr;
  static constexpr size_t kBatchPoolEntries = 16;
  model::ForwardOptions forward;
  int context_length = 0;  // the draft's positions per sequence
};

// What the registry hands to drafters that need more than the sequence.
class NgramCache;
class BanditMemory;
class DraftLengthMemory;
class SuffixAutomaton;
struct StrategyContext {
  int draft_max = 8;  // longest draft per step (--draft-max)
  // Model-free drafters (ngram, sam) propose every token they find, up to draft_max, instead of
  // the length their measured acceptance and verification cost pay for (draft_length.h).
  bool fixed_draft_length = false;
  const DraftModelResources* draft_model = nullptr;
  // The target itself as a draft model (its own page pool for the drafts' caches): layer skip.
  const DraftModelResources* self_draft = nullptr;
  NgramCache* ngram_cache = nullptr;      // shared across requests (ngram.h); null: none
  BanditMemory* bandit_memory = nullptr;  // shared across requests (bandit.h); null: per request
  // Shared across requests (draft_length.h); null: per request.
  DraftLengthMemory* draft_length_memory = nullptr;
  // A static suffix automaton over a corpus, followed by "sam" beside the text
  // (suffix_automaton.h); null: none.
  const SuffixAutomaton* sam_corpus = nullptr;
};

}  // namespace pareto::decoding
