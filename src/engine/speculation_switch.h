// SpeculationSwitch: whether speculative requests may draft in the next step (the policy; the
// scheduler acts on it), from a cost model whose every term is measured as the engine runs.
//
// Drafts pay while verifying extra entries is nearly free: a step reads every weight once however
// many entries it has, so at small batches k drafts cost little more than one token. With many
// sequences decoding the step becomes compute-bound, each drafted entry costs about what a plain
// token does, rejected drafts are pure loss, and a draft model's forwards (one sequence at a
// time) grow with the batch. For m sequences decoding, each drafting k tokens on average of which
// a tokens are accepted, at d seconds of drafting per sequence and step:
//
//   plain:  m tokens       in  t(m)
//   draft:  m (1 + a)      in  t(m (1 + k)) + m d
//
// t(n), the forward's time for n entries, comes from every step's forward: a running mean per
// power-of-two bucket of n, interpolated between buckets (flat below the smallest n seen, growing
// in proportion beyond the largest). k, a and d come from drafting steps; d only from sequences
// that also drafted in their previous step, since a draft model that sat out plain steps first
// catches up on the tokens it skipped, a cost of switching and not of drafting. Drafting runs
// where its predicted tokens per second are the higher (and always for a sequence decoding alone:
// then there is no batch to slow down, and its strategy decides); while it is not, one sequence
// drafts anyway after kExploreEvery plain steps (re-measuring k, a and d at 1/m of a full drafting
// step's cost), the wait doubling after each exploration (up to kMaxExploreEvery) and starting
// over once drafting wins. Either way the output is exact: a sequence that may not draft proposes
// its last token alone and decodes plainly.
#pragma once

#include <array>
#include <cstdint>

namespace pareto::engine {

class SpeculationSwitch {
 public:
  static constexpr int kWarmSteps = 4;  // drafting steps measured before the model decides
  static constexpr int kExploreEvery = 16;
  static constexpr int kMaxExploreEvery = 64;
  static constexpr double kWeight = 0.1;        // of the newest forward in its bucket's means
  static constexpr double kDraftWeight = 0.25;  // of the newest drafting step

  enum class Drafts {
    kAll,   // every speculative sequence drafts
    kOne,   // an exploration: one of them drafts, to re-measure drafting at 1/m of its cost
    kNone,  // plain decoding
  };
  // What the next step with m sequences decoding (at least one speculative) does.
  Drafts decide(int m);
  // Every step: the forward over `entries` entries took `seconds`.
  void record_forward(int entries, double seconds);
  // A drafting step: `sequences` speculative sequences drafted `drafted` tokens in all (the
  // entries beyond the one each decodes anyway), and `accepted` of them were accepted.
  void record_drafts(int sequences, int64_t drafted, int64_t accepted);
  // Drafting time (the strategies' propose and accept) of `sequences` sequences that drafted in
  // their previous step too.
  void record_draft_time(int sequences, double seconds);

  struct Estimate {
    double plain_tokens_per_second = 0;
    double draft_tokens_per_second = 0;
  };
  // The model's prediction for m sequences decoding (zeros until it has measurements).
  Estimate estimate(int m) const;
  // Forward time of n entries, seconds (0 before any forward).
  double forward_seconds(double n) const;
  int64_t drafting_steps() const { return draft_steps_; }

 private:
  struct Bucket {
    double n = 0, t = 0;  // running means of the entries and seconds of forwards in the bucket
    int64_t count = 0;
  };
  std::array<Bucket, 24> buckets_{};  // bucket b: 2^b <= entries < 2^(b+1)
  // Running means over drafting steps, per speculative sequence: drafted, accepted, seconds.
  double drafted_ = 0, accepted_ = 0, draft_seconds_ = 0;
  int64_t draft_steps_ = 0, timed_steps_ = 0;
  int64_t explore_interval_ = kExploreEvery;
  int64_t since_explored_ = 0;
};

}  // namespace pareto::engine
