// Drafter selection by a multi-armed bandit (in the spirit of MetaSD, ACL 2026, and "Not a
// Bandit", ICLR 2026): per request, each step picks one drafter ("arm") by UCB1 (Auer et al.
// 2002) on the measured reward of its past steps, tokens gained per second of drafting and
// verifying, (accepted + 1) / (draft seconds + verify seconds). One arm drafts nothing (plain
// decoding), so when no drafter pays the bandit settles on plain decoding. Rewards are scaled to
// [0, 1] by the largest seen so far; with a fixed scale UCB1's expected regret after T steps is
// O(sum over worse arms of ln T / gap). Every arm keeps its own state in step with the sequence
// (they read the accepted tokens lazily), so switching arms costs no rollback.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

class BanditDrafter final : public Drafter {
 public:
  // `arms` are the drafters to choose among; a "none" arm (no draft) is added.
  explicit BanditDrafter(std::vector<std::unique_ptr<Drafter>> arms);
  std::string_view name() const override { return "bandit"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;

  struct Arm {
    std::string name;
    int64_t pulls = 0;
    double reward_sum = 0;  // tokens per second, unscaled
  };
  const std::vector<Arm>& arms() const { return stats_; }

 private:
  size_t choose() const;
  std::vector<std::unique_ptr<Drafter>> arms_;  // arms_[i] for stats_[i]; the last is "none"
  std::vector<Arm> stats_;
  size_t current_ = 0;
  double draft_seconds_ = 0;  // of the current step
  double max_reward_ = 0;
  int64_t pulls_ = 0;
};

}  // namespace pareto::decoding
