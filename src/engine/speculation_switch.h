// SpeculationSwitch: whether speculative requests may draft in the next step (the policy; the
// scheduler acts on it), from a cost model whose every term is measured as the engine runs.
//
// Drafts pay while verifying extra entries is nearly free: a step reads every weight once however
// many entries it has, so at small batches k drafts cost little more than one token. With many
// sequences decoding the step becomes compute-bound, each drafted entry costs about what a plain
// token does, rejected drafts are pure loss, and a draft model's forwards (one sequence at a
// time) grow with the batch. For m sequences decoding, each drafting k tokens on average of which
// a fraction alpha is accepted, at d seconds of drafting per drafted token:
//
//   plain:  m tokens           in  t(m)
//   draft:  m (1 + alpha k)    in  t(m (1 + k)) + m k d
//
// where t(n), the forward's time for n entries, is a line fitted to every step (a + b n:
// weights read once plus per-entry work; decode steps only). Drafting runs where its tokens per
// second are the higher; while it does not, one step drafts anyway after kExploreEvery plain
// ones, so that k, alpha and d follow the traffic, the wait doubling after each such exploration
// (up to kMaxExploreEvery) and starting over once drafting wins. All estimates are exponentially
// weighted (kWeight, kDraftWeight for the newest observation); steps in which nothing was drafted
// are not drafting measurements. Either way the output is exact: a sequence that
// may not draft proposes its last token alone and decodes plainly.
#pragma once

#include <cstdint>

namespace pareto::engine {

class SpeculationSwitch {
 public:
  static constexpr int kWarmSteps = 4;  // drafting steps measured before the model decides
  static constexpr int kExploreEvery = 16;
  static constexpr int kMaxExploreEvery = 64;
  static constexpr double kWeight = 0.05;       // forward times: every decode step
  static constexpr double kDraftWeight = 0.25;  // drafting measurements: rarer while plain wins

  // Whether the next step with m sequences decoding (at least one speculative) drafts.
  bool allow(int m);
  // Every step: the forward over `entries` entries took `seconds`.
  void record_forward(int entries, double seconds);
  // A drafting step: its speculative sequences drafted `drafted` tokens in all (the entries
  // beyond the one each decodes anyway), `accepted` of them were accepted, and drafting (the
  // strategies' propose and accept) took `seconds`.
  void record_drafts(int sequences, int64_t drafted, int64_t accepted, double seconds);

  struct Estimate {
    double plain_tokens_per_second = 0;
    double draft_tokens_per_second = 0;
  };
  // The model's prediction for m sequences decoding (zeros until it has measurements).
  Estimate estimate(int m) const;
  // Forward time of n entries, seconds.
  double forward_seconds(double n) const;
  int64_t drafting_steps() const { return draft_steps_; }

 private:
  // Weighted means over steps: entries n, forward seconds t, n^2, n t.
  double n_ = 0, t_ = 0, nn_ = 0, nt_ = 0;
  int64_t forward_steps_ = 0;
  // Weighted means over drafting steps, per speculative sequence: drafted, accepted, seconds.
  double drafted_ = 0, accepted_ = 0, draft_seconds_ = 0;
  int64_t draft_steps_ = 0;
  int64_t explore_interval_ = kExploreEvery;
  int64_t since_explored_ = 0;
};

}  // namespace pareto::engine
