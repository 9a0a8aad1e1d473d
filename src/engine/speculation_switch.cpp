#include "engine/speculation_switch.h"

#include <algorithm>
#include <bit>

namespace pareto::engine {

namespace {

void blend(double& mean, double x, double w) {
  mean = (1 - w) * mean + w * x;
}

}  // namespace

void SpeculationSwitch::record_forward(int entries, double seconds) {
  if (entries <= 0 || seconds <= 0) return;
  const auto b = static_cast<size_t>(std::bit_width(static_cast<unsigned>(entries)) - 1);
  Bucket& bucket = buckets_[std::min(b, buckets_.size() - 1)];
  const double w = bucket.count == 0 ? 1.0 : kWeight;
  blend(bucket.n, entries, w);
  blend(bucket.t, seconds, w);
  ++bucket.count;
}

void SpeculationSwitch::record_drafts(int sequences, int64_t drafted, int64_t accepted) {
  // A step where nothing was drafted (an n-gram drafter with no match yet) says nothing about
  // what drafts yield.
  if (sequences <= 0 || drafted <= 0) return;
  const double w = draft_steps_ == 0 ? 1.0 : kDraftWeight;
  blend(drafted_, static_cast<double>(drafted) / sequences, w);
  blend(accepted_, static_cast<double>(accepted) / sequences, w);
  ++draft_steps_;
}

void SpeculationSwitch::record_draft_time(int sequences, double seconds) {
  if (sequences <= 0 || seconds < 0) return;
  const double w = timed_steps_ == 0 ? 1.0 : kDraftWeight;
  blend(draft_seconds_, seconds / sequences, w);
  ++timed_steps_;
}

double SpeculationSwitch::forward_seconds(double n) const {
  const Bucket* below = nullptr;  // the populated bucket with the largest mean n <= n
  const Bucket* above = nullptr;  // the populated bucket with the smallest mean n > n
  for (const Bucket& b : buckets_) {
    if (b.count == 0) continue;
    if (b.n <= n) {
      below = &b;
    } else if (above == nullptr) {
      above = &b;
    }
  }
  if (below == nullptr && above == nullptr) return 0;
  if (below == nullptr) return above->t;  // below every size seen: no cheaper than the smallest
  if (above == nullptr) return below->t * n / below->n;  // beyond: in proportion (compute-bound)
  const double f = (n - below->n) / (above->n - below->n);
  return below->t + f * (above->t - below->t);
}

SpeculationSwitch::Estimate SpeculationSwitch::estimate(int m) const {
  Estimate e;
  if (m <= 0) return e;
  const double plain = forward_seconds(m);
  if (plain <= 0) return e;
  e.plain_tokens_per_second = m / plain;
  if (draft_steps_ == 0) return e;
  const double draft = forward_seconds(m * (1 + drafted_)) + m * draft_seconds_;
  if (draft > 0) e.draft_tokens_per_second = m * (1 + accepted_) / draft;
  return e;
}

SpeculationSwitch::Drafts SpeculationSwitch::decide(int m) {
  // Alone, a sequence's drafts cost no batch anything: whether they pay is its strategy's call
  // (draft-adaptive's stopping rule, the bandit's arms).
  if (m <= 1 || draft_steps_ < kWarmSteps) return Drafts::kAll;
  const Estimate e = estimate(m);
  if (e.draft_tokens_per_second >= e.plain_tokens_per_second) {
    explore_interval_ = kExploreEvery;
    since_explored_ = 0;
    return Drafts::kAll;
  }
  if (++since_explored_ < explore_interval_) return Drafts::kNone;
  since_explored_ = 0;
  explore_interval_ = std::min<int64_t>(2 * explore_interval_, kMaxExploreEvery);
  return Drafts::kOne;
}

}  // namespace pareto::engine
