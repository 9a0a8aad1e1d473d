// Drafter selection by a multi-armed bandit (in the spirit of MetaSD, ACL 2026, and "Not a
// Bandit", ICLR 2026): per request, each step picks one drafter ("arm") by an upper confidence
// bound on the measured reward of its past steps, tokens gained per second of drafting and
// verifying, (accepted + 1) / (draft seconds + verify seconds), estimated per arm as its tokens
// over its seconds (the per-step rates give the noise scale). One arm drafts nothing (plain
// decoding), so when no drafter pays the bandit settles on plain decoding. The index is UCB for
// sigma-subgaussian rewards (Bubeck and Cesa-Bianchi 2012, Theorem 2.1, alpha = 3): mean +
// sigma * sqrt(2 alpha ln t / n_i), rewards scaled to [0, 1] by the largest seen, sigma the pooled
// standard deviation of the scaled rewards (at least kMinSigma): expected regret after T steps
// O(sum over worse arms of sigma^2 ln T / gap) when sigma bounds the noise. Measured rewards of
// one arm vary little, so this explores far less than UCB1's sigma = 1/2, which a request of a
// hundred steps cannot afford. The statistics live in a BanditMemory shared by the requests of
// an engine (the scheduler's), so what one request measured guides the next and t counts every
// step of the engine; without one, each request learns alone. Every arm keeps its own state in
// step with the sequence (they read the accepted tokens lazily), so switching arms costs no
// rollback. But an arm with costly state of its own (the draft model's cache) must first catch up
// on the tokens accepted while it sat out (Drafter::lag; at a request's start, the whole prompt):
// several milliseconds, where a step takes one. That catch-up is the price of switching to the
// arm, not of playing it: the bandit has the arm take it in first (Drafter::catch_up) and times it
// apart, so an arm's rate is its running rate, and its index when it lags is the rate of an epoch
// that starts with the catch-up (its measured cost per token times the lag). Chosen with such a
// lag, an arm is played for an epoch of kEpochSteps steps of the request (as UCB2 plays arms in
// epochs, Auer, Cesa-Bianchi and Fischer 2002, to bound the switches), so the catch-up is paid
// once per epoch instead of once per pull.
//
// Exploration is needed only for arms whose drafts cost something. A drafter that is free to ask
// (Drafter::free_to_ask: n-gram lookup, the suffix automaton) drafts every step beside the arm
// played, unplayed, and its draft is scored once the sequence has gone on far enough to show how
// many of its tokens would have passed (an exact count for greedy decoding, whose output does not
// depend on the drafts; for sampled decoding each one-hot token passes with the chance that the
// target samples it, so matching the sampled text is an unbiased count); the step it would have
// taken is its draft time plus the verification of its entries as measured (BanditState::
// verify_cost). "None" is scored every step it is not played, as one token in a one-entry
// verification. This is the full-information view of drafter selection (Liu et al.,
// "Not-a-Bandit", ICLR 2026: one verified trajectory evaluates every drafter): a free arm is not
// pulled first to be explored (the first-pull rule skips it), and its confidence bound shrinks with
// every step, so UCB plays it only where its scores earn it. Scored rewards count in an arm's
// rate and pulls, not in the noise scale (played steps only). Drafts still matching when a request
// ends are never scored.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

struct BanditArm {
  std::string name;
  int64_t pulls = 0;
  double reward_sum = 0;        // tokens per second, unscaled
  double reward_sum_sq = 0;     // of their squares (the noise scale, sigma)
  double tokens = 0;            // gained over its steps
  double seconds = 0;           // its steps' draft and verify time (each at least 1 us)
  double catch_up_tokens = 0;   // taken in by catch-ups before its drafts (not in `seconds`)
  double catch_up_seconds = 0;  // their time
  int64_t scored = 0;           // of the pulls, steps scored without playing it (see below)
};

struct BanditState {
  std::vector<BanditArm> arms;
  double max_reward = 0;
  int64_t pulls = 0;
  int64_t requests = 0;  // requests that drafted with this state (for the mean request's steps)
  // Verification seconds by entries over every step played: what a scored draft would have cost.
  VerifyCostFit verify_cost{0.98};
};

// The bandits' statistics of one engine, one state per set of arms. state_for runs when a bandit
// is made (on a submitting thread, under the scheduler's StrategyMemories lock); the states' fields
// are then updated by the step thread only, which never adds or removes arms.
class BanditMemory {
 public:
  BanditState& state_for(const std::vector<std::string>& arm_names);

 private:
  std::map<std::vector<std::string>, BanditState> states_;
};

class BanditDrafter final : public Drafter {
 public:
  // Seconds on a monotonic clock: what the bandit times its arms' drafts with.
  using Clock = double (*)();
  static double steady_seconds();

  // `arms` are the drafters to choose among; a "none" arm (no draft) is added. `memory`: shared
  // statistics (may be null: this drafter's own). `epoch_steps`: steps an arm chosen with a lag
  // is played (1: every step chooses afresh). `clock`: tests of simulated timings pass a stopped
  // one, so that only the times they report count.
  explicit BanditDrafter(std::vector<std::unique_ptr<Drafter>> arms, BanditMemory* memory = nullptr,
                         int epoch_steps = kEpochSteps, Clock clock = steady_seconds);
  std::string_view name() const override { return "bandit"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  bool wants_residuals() const override;

  static constexpr double kAlpha = 3.0;
  static constexpr double kMinSigma = 0.05;
  // An arm chosen with a lag of at least kEpochLag tokens is played kEpochSteps steps in a row.
  static constexpr int kEpochLag = 16;
  static constexpr int kEpochSteps = 4;
  // A free arm not played is asked every step until it has kAskEveryStep pulls, then every
  // kAskPeriod-th step of a request.
  static constexpr int64_t kAskEveryStep = 64;
  static constexpr int64_t kAskPeriod = 4;
  const std::vector<BanditArm>& arms() const { return state_->arms; }

 private:
  // lags[i]: tokens arm i must catch up on before drafting (Drafter::lag less the pending one).
  size_t choose(std::span<const int> lags) const;
  std::vector<std::unique_ptr<Drafter>> arms_;  // arms_[i] for arms()[i]; the last is "none"
  BanditState own_;
  BanditState* state_;
  int epoch_steps_;
  size_t current_ = 0;    // the arm of this step
  size_t epoch_arm_ = 0;  // the arm of the epoch under way, for epoch_left_ more steps
  int epoch_left_ = 0;
  Clock clock_;
  int64_t steps_ = 0;  // verified steps of this request
  // The mean steps of the requests before this one (0: none before), taken at its first step.
  double request_steps_ = 0;
  bool counted_ = false;      // in state_->requests
  double draft_seconds_ = 0;  // of the current step, less its catch-up
  std::vector<int> lags_;     // choose()'s input, kept to reuse its storage
  // A free arm's draft awaiting its score: made when the sequence held `position` tokens.
  struct Unplayed {
    size_t arm = 0;
    size_t position = 0;
    std::vector<int32_t> tokens;
    double draft_seconds = 0;
  };
  std::vector<Unplayed> unplayed_;
  Draft scratch_;
  void ask_free_arms(const SequenceState& seq, int max_tokens);
  void score_unplayed(const SequenceState& seq);
  void add_reward(size_t arm, double tokens, double seconds, bool scored);
};

}  // namespace pareto::decoding
