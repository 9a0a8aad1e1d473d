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

double BanditDrafter::steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

BanditDrafter::BanditDrafter(std::vector<std::unique_ptr<Drafter>> arms, BanditMemory* memory,
                             int epoch_steps, Clock clock)
    : arms_(std::move(arms)), epoch_steps_(epoch_steps), clock_(clock) {
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

size_t BanditDrafter::choose(std::span<const int> lags) const {
  const std::vector<BanditArm>& arms = state_->arms;
  const double max_reward = state_->max_reward;
  const int64_t pulls = state_->pulls;
  // Every arm once first, but a free one: it is scored without being played (it may lack scores
  // still while the verification cost is being measured).
  const auto free = [&](size_t i) { return arms_[i] != nullptr && arms_[i]->free_to_ask(); };
  for (size_t i = 0; i < arms.size(); ++i) {
    if (arms[i].pulls == 0 && !free(i)) return i;
  }
  if (max_reward <= 0) return arms.size() - 1;  // nothing measured: plain decoding
  // Pooled within-arm variance of the scaled rewards.
  // Played steps only: a scored reward carries no timing noise of its own (its verification
  // time is the fit's), and "none"'s would shrink the noise scale the costly arms are explored by.
  double ss = 0;
  double observations = 0, measured = 0;
  for (const BanditArm& a : arms) {
    if (a.pulls - a.scored == 0) continue;
    const double n = static_cast<double>(a.pulls - a.scored);
    ss += (a.reward_sum_sq - a.reward_sum * a.reward_sum / n) / (max_reward * max_reward);
    observations += n;
    ++measured;
  }
  const double dof = observations - measured;
  const double sigma = std::max(kMinSigma, dof > 0 ? std::sqrt(std::max(ss, 0.0) / dof) : 0.5);
  // The arm's rate: its tokens over its seconds, scaled. (The mean of its per-step rates would
  // favour an arm whose cheap steps win and costly ones lose: 2 tokens in 1.2 ms, then 1 in 2.6
  // ms, is 0.79x plain decoding at 1 ms a token, though those rates average 1.03x.)
  const auto rate = [&](const BanditArm& a) { return a.tokens / a.seconds / max_reward; };
  size_t leader = 0;
  for (size_t i = 1; i < arms.size(); ++i) {
    if (arms[i].pulls > 0 && (arms[leader].pulls == 0 || rate(arms[i]) > rate(arms[leader]))) {
      leader = i;
    }
  }
  size_t best = arms.size() - 1;
  double best_score = -1;
  const double log_n = std::log(static_cast<double>(pulls));
  for (size_t i = 0; i < arms.size(); ++i) {
    const BanditArm& a = arms[i];
    if (a.pulls == 0) continue;  // a free arm not scored yet
    double mean = rate(a);
    // An arm lagging by kEpochLag tokens or more pays its catch-up (its measured cost per token
    // times the lag) before its steps: judged by the rate over the steps it would be played.
    // Another than the leader is explored for an epoch; the leader would be kept for the rest of
    // the request (the mean request's steps less this one's so far, at least an epoch), so a small
    // lead does not pay for a long catch-up while a large one does.
    const int lag = lags[i];
    if (lag >= kEpochLag && a.catch_up_tokens > 0) {
      const double epoch = epoch_steps_;
      const double steps =
          i == leader ? std::max(epoch, request_steps_ - static_cast<double>(steps_)) : epoch;
      const double catch_up = lag * a.catch_up_seconds / a.catch_up_tokens;
      const double step_seconds = a.seconds / static_cast<double>(a.pulls);
      mean *= step_seconds / (step_seconds + catch_up / steps);
    }
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
  const double start = clock_();
  // A step with no room to draft (the context's end, a KIVI quantization point) is plain decoding,
  // whatever arm would have drafted: it counts for the "none" arm.
  const size_t none = arms_.size() - 1;
  if (!counted_) {  // here, not in the constructor: the step thread alone writes the state
    // Counted when it starts, so requests still running count their steps so far: an estimate
    // on the low side when several run together.
    if (state_->requests > 0) {
      request_steps_ = static_cast<double>(state_->pulls) / static_cast<double>(state_->requests);
    }
    ++state_->requests;
    counted_ = true;
  }
  current_ = none;
  // (A no-room step inside an epoch leaves the epoch to the steps after it.)
  bool chosen_now = false;
  if (max_tokens > 0 && epoch_left_ > 0) {
    current_ = epoch_arm_;
    --epoch_left_;
  } else if (max_tokens > 0) {
    lags_.assign(arms_.size(), 0);
    for (size_t i = 0; i < arms_.size(); ++i) {
      if (arms_[i] != nullptr) lags_[i] = std::max(arms_[i]->lag(seq) - 1, 0);  // less the pending
    }
    current_ = choose(lags_);
    chosen_now = true;
    epoch_arm_ = current_;
    epoch_left_ = lags_[current_] >= kEpochLag ? epoch_steps_ - 1 : 0;
  }
  double catch_up_seconds = 0;
  if (Drafter* arm = arms_[current_].get(); arm != nullptr) {
    // A short lag (the few tokens accepted while another arm drafted) is taken in by the draft's
    // own first forward, as every draft takes in its pending token: no catch-up of its own.
    const int lag = chosen_now ? lags_[current_] : std::max(arm->lag(seq) - 1, 0);
    if (lag >= kEpochLag) {
      catch_up_seconds = arm->catch_up(seq);
      if (catch_up_seconds > 0) {
        BanditArm& a = state_->arms[current_];
        a.catch_up_tokens += lag;
        a.catch_up_seconds += catch_up_seconds;
      }
    }
    arm->draft(seq, max_tokens, out);
  }
  draft_seconds_ = std::max(clock_() - start - catch_up_seconds, 0.0);
  ask_free_arms(seq, max_tokens);
}

void BanditDrafter::ask_free_arms(const SequenceState& seq, int max_tokens) {
  if (max_tokens <= 0) return;
  // At most kMaxUnplayed drafts (all arms together) await their score: a draft is scored within
  // a few steps, and the cap bounds what a sequence that stopped growing, or a fit without a
  // slope, could pile up.
  constexpr size_t kMaxUnplayed = 32;
  for (size_t i = 0; i + 1 < arms_.size(); ++i) {
    if (i == current_ || !arms_[i]->free_to_ask() || unplayed_.size() >= kMaxUnplayed) continue;
    // Once an arm is well measured, every kAskPeriod-th step: on a model whose step takes 70 us
    // (stories260K), two lookups every step cost the bandit 4% against plain decoding.
    if (state_->arms[i].pulls >= kAskEveryStep && steps_ % kAskPeriod != 0) continue;
    scratch_.clear();
    const double start = clock_();
    arms_[i]->draft(seq, max_tokens, scratch_);
    const double seconds = std::max(clock_() - start, 0.0);
    if (scratch_.tokens.empty() || !scratch_.parents.empty()) continue;
    unplayed_.push_back({i, seq.tokens.size(), scratch_.tokens, seconds});
  }
}

void BanditDrafter::add_reward(size_t arm, double tokens, double seconds, bool scored) {
  // At least a microsecond (no real step is shorter): the step's reward and the arm's rate use the
  // same time.
  seconds = std::max(seconds, 1e-6);
  const double reward = tokens / seconds;
  BanditState& s = *state_;
  s.max_reward = std::max(s.max_reward, reward);
  BanditArm& a = s.arms[arm];
  ++a.pulls;
  if (scored) {
    ++a.scored;
  } else {
    a.reward_sum += reward;
    a.reward_sum_sq += reward * reward;
  }
  a.tokens += tokens;
  a.seconds += seconds;
}

void BanditDrafter::score_unplayed(const SequenceState& seq) {
  const VerifyCostFit& cost = state_->verify_cost;
  // Scored once the cost is known (kMaxUnplayed bounds the wait). A fit without a slope (the
  // played steps all had the same entries for a long while: its decayed spread is gone) would
  // cost a draft of k tokens as a plain step: the drafts wait until played steps vary again.
  if (!cost.ready() || cost.step() <= 0) return;
  // A verification of n entries, as measured.
  const auto verify_seconds = [&](int entries) {
    return cost.step() + cost.per_entry() * static_cast<double>(entries - 1);
  };
  const size_t none = arms_.size() - 1;
  if (current_ != none) add_reward(none, 1, verify_seconds(1), true);
  if (cost.per_entry() <= 0) return;  // no slope: the drafts wait
  size_t kept = 0;
  for (Unplayed& u : unplayed_) {
    // The tokens the sequence went on with after the draft's pending token, and how many of the
    // draft's passed: known once a token differs or all of them are matched.
    const size_t known = seq.tokens.size() > u.position ? seq.tokens.size() - u.position : 0;
    size_t passed = 0;
    while (passed < u.tokens.size() && passed < known &&
           u.tokens[passed] == seq.tokens[u.position + passed]) {
      ++passed;
    }
    if (passed == known && passed < u.tokens.size()) {
      unplayed_[kept++] = std::move(u);  // every known token matched: wait for more
      continue;
    }
    const int drafted = static_cast<int>(u.tokens.size());
    const double seconds = u.draft_seconds + verify_seconds(drafted + 1);
    add_reward(u.arm, static_cast<double>(passed) + 1, seconds, true);
    arms_[u.arm]->verified(seq, {drafted, static_cast<int>(passed), seconds - u.draft_seconds});
  }
  unplayed_.resize(kept);
}

bool BanditDrafter::wants_residuals() const {
  return std::any_of(arms_.begin(), arms_.end(),
                     [](const auto& arm) { return arm != nullptr && arm->wants_residuals(); });
}

void BanditDrafter::verified(const SequenceState& seq, const Verification& v) {
  if (arms_[current_] != nullptr) arms_[current_]->verified(seq, v);
  add_reward(current_, v.accepted + 1, draft_seconds_ + v.verify_seconds, false);
  state_->verify_cost.add(v.drafted + 1, v.verify_seconds);
  ++state_->pulls;
  ++steps_;
  score_unplayed(seq);
}

}  // namespace pareto::decoding
