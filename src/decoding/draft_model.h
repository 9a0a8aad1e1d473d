// Draft-model speculation (Leviathan et al. 2023; Chen et al. 2023): a smaller model sharing the
// target's vocabulary drafts a chain one token at a time; the target verifies it in one forward.
// Each sequence's drafter keeps the draft model's KV cache in step with the sequence: before a
// draft it truncates the cache to the longest prefix it holds of the accepted tokens and feeds
// the rest (the tokens accepted since, in one forward), so rejected drafts roll back for free.
// Greedy requests draft the draft's argmax; sampled ones draw from the draft's processed
// distribution (same processors as the target) with the drafter's own RNG, and record q for the
// rejection test.
//
// "draft-adaptive" picks the length on the fly (in the spirit of "on-the-fly adaptation of draft
// lengths", ACL 2025): drafting token i+1 is worth it while the chance that tokens 0..i all pass,
// estimated from the draft's own probabilities (calibrated by the acceptance measured so far),
// times the time one target step costs exceeds the time to draft and verify one more token (both
// measured as the request runs). "draft" drafts the fixed --draft-max.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "decoding/draft_length.h"
#include "decoding/drafter.h"

namespace pareto::decoding {

// The probability softmax(logits) gives its argmax (a greedy draft's own confidence), to about
// 10^-5 relative for the vocabularies tested (up to 32k; float partial sums): it only decides
// whether to draft on. A vectorized exp, not libm's: this runs over the vocabulary once per draft
// token. Logits are expected finite.
double argmax_probability(std::span<const float> logits);

// The draft model's KV cache of one sequence, kept in step with the sequence's accepted tokens:
// sync() keeps the longest prefix of them it holds and feeds the rest (always at least the
// pending token, whose logits start a draft), so drafts that were rejected cost nothing to undo.
class DraftModelCache {
 public:
  // skip_layers: layers of the draft model to skip (ForwardOptions::skip_layers; empty: none).
  explicit DraftModelCache(const DraftModelResources& resources,
                           std::vector<uint8_t> skip_layers = {});
  // False when the draft's context or page pool has no room (then no draft this step).
  bool sync(std::span<const int32_t> tokens);
  // Layer skip on the target's own cache: holds a copy-on-write fork of `target` (the target's
  // entries of every verified token, in every layer, as its verification wrote them) and feeds the
  // rest of `tokens` (the pending one) through the kept layers. Nothing to catch up, and the
  // draft attends over the target's exact keys and values; the fork shares the target's pages,
  // so drafting writes only copies of each slot's last page. release() drops the fork.
  bool sync_on(const kv::KvCache& target, std::span<const int32_t> tokens);
  void release();
  // Another skip set of the same size (only for a cache that holds nothing of its own: layer skip
  // on forks, between drafts).
  void set_skip_layers(std::span<const uint8_t> skip);
  std::span<const uint8_t> skip_layers() const { return skip_; }
  // Appends `tokens` (causal) after what is held; logits of the last one.
  bool feed(std::span<const int32_t> tokens);
  // Evaluates `entries` (positions and parents set by the caller; a tree continuing what is held)
  // and then drops them again: the logits of the entries that asked for them.
  bool evaluate_and_drop(std::span<const model::BatchEntry> entries);
  // [rows, n_vocab] of the last feed / evaluation.
  std::span<const float> logits() const { return logits_; }
  int held() const { return static_cast<int>(fed_.size()); }
  // How many of `tokens` sync() would have to feed (what it holds beyond their common prefix is
  // dropped first): the catch-up a draft now would pay.
  int behind(std::span<const int32_t> tokens) const;
  // Drafter::catch_up for a drafter over this cache: syncs all of `tokens` but the last (the
  // pending one, which the draft feeds); the seconds it took, or 0 when there was nothing to do,
  // no room to draft after it (the draft's context is full) or the sync failed (out of pages).
  double catch_up(std::span<const int32_t> tokens);
  const DraftModelResources& resources() const { return r_; }

 private:
  const DraftModelResources& r_;
  std::vector<uint8_t> skip_;
  model::ForwardOptions forward_;  // r_.forward with skip_
  kv::KvCache cache_;
  std::vector<int32_t> fed_;  // the tokens whose entries cache_ holds
  model::ForwardWorkspace workspace_;
  std::vector<model::BatchEntry> entries_;
  std::vector<float> logits_;
};

class DraftModelDrafter final : public Drafter {
 public:
  // `memory`: where the adaptive length's estimates are shared with the engine's other requests
  // (null: this drafter's own, starting cold).
  DraftModelDrafter(const DraftModelResources& resources, bool adaptive,
                    DraftLengthMemory* memory = nullptr);
  // Self-speculation (name "layerskip"): the target itself with `skip_layers` skipped drafts,
  // adaptive length (LayerSkip, Elhoushi et al. ACL 2024; CLaSp, ACL 2025).
  DraftModelDrafter(const DraftModelResources& target, std::vector<uint8_t> skip_layers,
                    DraftLengthMemory* memory = nullptr);
  DraftModelDrafter(const DraftModelDrafter&) = delete;  // stats_ may point at own_
  DraftModelDrafter& operator=(const DraftModelDrafter&) = delete;
  std::string_view name() const override {
    return layer_skip_ ? "layerskip" : adaptive_ ? "draft-adaptive" : "draft";
  }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  int lag(const SequenceState& seq) const override;
  double catch_up(const SequenceState& seq) override;
  // Layer skip re-chooses its skipped layers after each verification (CLaSp; layer_selection.h).
  bool wants_residuals() const override { return layer_skip_; }
  std::span<const uint8_t> skip_layers() const { return draft_.skip_layers(); }

 private:
  bool keep_drafting(double p_all_pass) const;
  // The chain after the sync: the pending token's logits are the draft's last.
  void draft_chain(const SequenceState& seq, int max_tokens, Draft& out);

  DraftModelCache draft_;
  bool adaptive_;
  bool layer_skip_ = false;
  std::vector<int32_t> history_;    // seq.tokens + the draft so far (the processors' history)
  std::vector<double> confidence_;  // the draft's probability of each token of the last draft
  sampling::Candidates candidates_;
  std::mt19937_64 rng_;
  bool seeded_ = false;
  // Adaptive length: measured costs (seconds) and calibration, exponentially decayed; shared
  // with the engine's other requests of this drafter where a memory was given.
  DraftModelStats own_;
  DraftModelStats* stats_;
};

}  // namespace pareto::decoding
