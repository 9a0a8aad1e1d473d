// Speculative decoding: a Drafter proposes a chain (or a token tree) after the pending token, the
// target evaluates the pending token and the draft in ONE batched forward (with every other
// sequence of the step; a tree with a tree mask), and the longest valid prefix (root path) is
// kept; the rejected entries' KV is truncated (erased, for a tree's other branches).
//  - Greedy chains: draft i is kept while it equals the target's argmax after draft i-1; then
//    the target's own next token is appended. The output is plain greedy decoding's, token for
//    token, whenever a row's logits do not depend on the batch (ForwardOptions::batch_invariant).
//  - Sampling chains: the modified rejection sampling of Leviathan et al. 2023 / Chen et al. 2023:
//    draft x (drawn from q) is kept with probability min(1, p(x) / q(x)), p the target's processed
//    distribution; on the first rejection a token is drawn from norm(max(0, p - q)); after a fully
//    accepted chain one more from p. The output distribution is exactly the target's. A
//    deterministic drafter has q one-hot on its token: kept with probability p(x), else drawn
//    from p without x.
//  - Sampling trees (SpecInfer): a node's children were drawn independently from the draft's q at
//    that node; they are tried in draw order with the residual updated after each rejection
//    (verify_draft_candidates), the walk goes on from the kept child, and a node where none is
//    kept (or a leaf) draws the next token from what is left of p.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

// Buffers of verify_draft_token, reused across calls.
struct VerifyScratch {
  sampling::Candidates residual;
  std::vector<float> q_by_id;  // q's probabilities indexed by token id (zero elsewhere)
  std::vector<double> p_now;   // verify_draft_candidates: p, then its residuals, as p's items
};

class SpeculativeStrategy final : public DecodingStrategy {
 public:
  SpeculativeStrategy(std::unique_ptr<Drafter> drafter, int max_draft);
  std::string_view name() const override { return drafter_->name(); }
  void propose(const SequenceState& seq, int max_entries,
               std::vector<model::BatchEntry>& entries) override;
  int accept(SequenceState& seq, std::span<const float> logits) override;
  const SpeculationStats* speculation() const override { return &stats_; }
  bool wants_residuals() const override { return drafter_->wants_residuals(); }
  const Drafter& drafter() const { return *drafter_; }

 private:
  int accept_tree(SequenceState& seq, std::span<const float> logits);

  std::unique_ptr<Drafter> drafter_;
  int max_draft_;
  // accept_tree's buffers, reused: entries kept / erased, node depths, cache indices to erase.
  std::vector<int> kept_, erase_, depth_of_, erase_indices_;
  std::vector<int32_t> children_, child_tokens_;  // a sampled tree node's children (accept_tree)
  Draft draft_;                                   // the last proposal
  SpeculationStats stats_;
  sampling::Candidates target_;
  VerifyScratch scratch_;
  std::chrono::steady_clock::time_point proposed_at_{};
  bool verified_once_ = false;
};

// One verification step of the sampling case (exposed for tests): given the target's processed
// distribution `p` at a draft position, the draft token and its q (nullptr: one-hot), returns the
// token to append and sets `accepted`. Draws from chain's RNG (chain must not be greedy). O(|p| +
// |q|).
int32_t verify_draft_token(sampling::SamplerChain& chain, const sampling::Candidates& p,
                           int32_t draft, const sampling::Candidates* q, bool& accepted,
                           VerifyScratch& scratch);

// SpecInfer's multi-step speculative sampling (Miao et al., ASPLOS 2024) at one node of a token
// tree whose children `candidates` were drawn independently from q, in draw order: candidate i is
// kept with probability min(1, p_i(x_i) / q(x_i)), where p_0 = p and a rejection replaces p_i by
// norm(max(0, p_i - q)); when none is kept, a token is drawn from the last residual. The token
// returned then follows p exactly. Sets `kept` to the kept candidate's index, or -1. With one
// candidate this is verify_draft_token. O(k (|p| + |q|)).
int32_t verify_draft_candidates(sampling::SamplerChain& chain, const sampling::Candidates& p,
                                std::span<const int32_t> candidates, const sampling::Candidates& q,
                                int& kept, VerifyScratch& scratch);

}  // namespace pareto::decoding
