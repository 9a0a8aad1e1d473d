#include "decoding/bandit.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::decoding {

BanditState& BanditMemory::state_for(const std::vector<std::string>& arm_names) {
  BanditState& s = states_[arm_names];
  if (s.arms.empty()) {
    for (const std::string& name : arm_names) s.arms.push_back({name});
  }
  return s;
}

BanditDrafter::BanditDrafter(std::vector<std::unique_ptr<Drafter>> arms, BanditMemory* memory,
                             int epoch_steps)
    : arms_(std::move(arms)), epoch_steps_(epoch_steps) {
  PARETO_CHECK(epoch_steps_ >= 1);
  std::vector<std::string> names;
  for (const auto& a : arms_) {
    PARETO_CHECK(a != nullptr);
    names.emplace_back(a->name());
  }
  arms_.push_back(nullptr);  // "none": plain decoding
  names.emplace_back("none");
  if (memory != nullptr) {
    state_ = &memory->state_for(names);
  } else {
    for (const std::string& name : names) own_.arms.push_back({name});
    state_ = &own_;
  }
}

size_t BanditDrafter::choose() const {
  const std::vector<BanditArm>& arms = state_->arms;
  const double max_reward = state_->max_reward;
  const int64_t pulls = state_->pulls;
  for (size_t i = 0; i < arms.size(); ++i) {
    if (arms[i].pulls == 0) return i;  // every arm once first
  }
  if (max_reward <= 0) return arms.size() - 1;  // nothing measured: plain decoding
  // Pooled within-arm variance of the scaled rewards.
  double ss = 0;
  for (const BanditArm& a : arms) {
    const double n = static_cast<double>(a.pulls);
    ss += (a.reward_sum_sq - a.reward_sum * a.reward_sum / n) / (max_reward * max_reward);
  }
  const double dof = static_cast<double>(pulls) - static_cast<double>(arms.size());
  const double sigma = std::max(kMinSigma, dof > 0 ? std::sqrt(std::max(ss, 0.0) / dof) : 0.5);
  size_t best = 0;
  double best_score = -1;
  const double log_n = std::log(static_cast<double>(pulls));
  for (size_t i = 0; i < arms.size(); ++i) {
    const BanditArm& a = arms[i];
    // The arm's rate: its tokens over its seconds, scaled. (The mean of its per-step rates would
    // favour an arm whose cheap steps win and costly ones lose: 2 tokens in 1.2 ms, then 1 in
    // 2.6 ms, is 0.79x plain decoding at 1 ms a token, though those rates average 1.03x.)
    const double mean = a.tokens / a.seconds / max_reward;
    const double score =
        mean + sigma * std::sqrt(2.0 * kAlpha * log_n / static_cast<double>(a.pulls));
    if (score > best_score) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

void BanditDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  const auto start = std::chrono::steady_clock::now();
  // A step with no room to draft (the context's end, a KIVI quantization point) is plain decoding,
  // whatever arm would have drafted: it counts for the "none" arm.
  const size_t none = arms_.size() - 1;
  current_ = none;
  // (A no-room step inside an epoch leaves the epoch to the steps after it.)
  if (max_tokens > 0 && epoch_left_ > 0) {
    current_ = epoch_arm_;
    --epoch_left_;
  } else if (max_tokens > 0) {
    current_ = choose();
    epoch_arm_ = current_;
    epoch_left_ =
        arms_[current_] != nullptr && arms_[current_]->lag(seq) >= kEpochLag ? epoch_steps_ - 1 : 0;
  }
  if (arms_[current_] != nullptr) arms_[current_]->draft(seq, max_tokens, out);
  draft_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool BanditDrafter::wants_residuals() const {
  return std::any_of(arms_.begin(), arms_.end(),
                     [](const auto& arm) { return arm != nullptr && arm->wants_residuals(); });
}

void BanditDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (arms_[current_] != nullptr) arms_[current_]->verified(seq, v);
  // At least a microsecond (no real step is shorter): the step's reward and the arm's rate use the
  // same time.
  const double seconds = std::max(draft_seconds_ + v.verify_seconds, 1e-6);
  const double reward = (v.accepted + 1) / seconds;
  BanditState& s = *state_;
  s.max_reward = std::max(s.max_reward, reward);
  BanditArm& arm = s.arms[current_];
  ++arm.pulls;
  arm.reward_sum += reward;
  arm.reward_sum_sq += reward * reward;
  arm.tokens += v.accepted + 1;
  arm.seconds += seconds;
  ++s.pulls;
}

}  // namespace pareto::decoding
