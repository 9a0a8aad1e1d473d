// Token trees from a draft model (SpecInfer, ASPLOS 2024, for tree verification; the tree's shape
// in the spirit of the cost-aware dynamic tree, ICLR 2026, and Yggdrasil, NeurIPS 2025, grown as
// EAGLE-2 does): instead of one chain, the draft grows a tree level by level, the kWidth children
// of highest path value joining at each level, then the budget's worth of nodes of highest value
// is kept, while a node's value pays for its verification: value x (one target step) > the
// measured marginal cost of one more verified entry. A node's value estimates the chance the
// target's greedy walk reaches it: the product along its path of the measured acceptance rate of
// a child of its rank among its siblings (by the draft's probability), as Sequoia's acceptance
// vector, counted over the nodes the walks reached (the draft's own probabilities
// underestimate greedy acceptance: pycode1m's top-1 token passes about 80% of the time at a
// probability of about half that). The target
// verifies the whole tree in ONE forward (tree mask: each node sees its ancestors); the longest
// root path the target's greedy choices follow is accepted and every other node's KV entries are
// erased. Sampled requests get a sampled tree (SpecInfer): kWidth children of the pending token
// drawn independently from the draft's processed distribution q, then one child drawn below each
// node, and the target verifies them by multi-step speculative sampling
// (verify_draft_candidates), so the output follows the target's distribution exactly.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "decoding/draft_model.h"
#include "decoding/drafter.h"

namespace pareto::decoding {

class DraftTreeDrafter final : public Drafter {
 public:
  static constexpr int kWidth = 2;     // nodes joining per level (children of the frontier)
  static constexpr int kMaxDepth = 8;  // levels
  explicit DraftTreeDrafter(const DraftModelResources& resources) : draft_(resources) {}
  std::string_view name() const override { return "tree"; }
  // max_tokens is the node budget.
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  int lag(const SequenceState& seq) const override { return draft_.behind(seq.tokens); }
  double catch_up(const SequenceState& seq) override { return draft_.catch_up(seq.tokens); }

 private:
  // The sampled tree (requests that sample): children drawn from q, q kept per node.
  void draft_sampled(const SequenceState& seq, int max_tokens, Draft& out);
  // The least path probability worth verifying (from the measured costs; a fixed start).
  double min_path_probability() const;

  DraftModelCache draft_;
  struct Candidate {
    double log_p;    // the path value's logarithm
    int32_t parent;  // node index, -1: the pending token
    int32_t token;
    int32_t rank;  // among the parent's children, by the draft's probability
  };
  double log_acceptance(int rank) const;
  // Acceptance by rank: children of reached nodes, and those the walk took (with a prior).
  double reached_[kWidth] = {}, taken_[kWidth] = {};
  // The last proposal (for verified()): tokens, parents and ranks of the kept nodes.
  std::vector<int32_t> last_tokens_, last_parents_, last_ranks_;
  size_t last_pending_ = 0;
  std::vector<Candidate> candidates_;
  std::vector<double> node_log_p_, best_;
  std::vector<int32_t> depth_, frontier_;
  std::vector<model::BatchEntry> entries_;
  std::vector<std::pair<float, int32_t>> top_;
  std::vector<int32_t> grown_tokens_, grown_parents_, grown_ranks_, order_, keep_;
  VerifyCostFit cost_;
  std::mt19937_64 rng_;  // the sampled tree's draws (independent of the acceptance draws)
  bool seeded_ = false;
  std::vector<int32_t> history_;
  sampling::Candidates q_;
};

}  // namespace pareto::decoding
