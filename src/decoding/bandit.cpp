#include "decoding/bandit.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {

BanditDrafter::BanditDrafter(std::vector<std::unique_ptr<Drafter>> arms) : arms_(std::move(arms)) {
  for (const auto& a : arms_) {
    PARETO_CHECK(a != nullptr);
    stats_.push_back({std::string(a->name())});
  }
  arms_.push_back(nullptr);  // "none": plain decoding
  stats_.push_back({"none"});
}

size_t BanditDrafter::choose() const {
  for (size_t i = 0; i < stats_.size(); ++i) {
    if (stats_[i].pulls == 0) return i;  // every arm once first
  }
  size_t best = 0;
  double best_score = -1;
  const double log_n = std::log(static_cast<double>(pulls_));
  for (size_t i = 0; i < stats_.size(); ++i) {
    const Arm& a = stats_[i];
    const double mean =
        max_reward_ > 0 ? a.reward_sum / static_cast<double>(a.pulls) / max_reward_ : 0.0;
    const double score = mean + std::sqrt(2.0 * log_n / static_cast<double>(a.pulls));
    if (score > best_score) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

void BanditDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  const auto start = std::chrono::steady_clock::now();
  current_ = choose();
  if (arms_[current_] != nullptr) arms_[current_]->draft(seq, max_tokens, out);
  draft_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void BanditDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (arms_[current_] != nullptr) arms_[current_]->verified(seq, v);
  const double seconds = draft_seconds_ + v.verify_seconds;
  const double reward = seconds > 0 ? (v.accepted + 1) / seconds : 0.0;
  max_reward_ = std::max(max_reward_, reward);
  ++stats_[current_].pulls;
  stats_[current_].reward_sum += reward;
  ++pulls_;
}

}  // namespace pareto::decoding
