#include "engine/speculation_switch.h"

#include <algorithm>

namespace pareto::engine {

namespace {

void blend(double& mean, double x, double w) {
  mean = (1 - w) * mean + w * x;
}

}  // namespace

void SpeculationSwitch::record_forward(int entries, double seconds) {
  if (entries <= 0 || seconds <= 0) return;
  const double w = forward_steps_ == 0 ? 1.0 : kWeight;
  const double n = entries;
  blend(n_, n, w);
  blend(t_, seconds, w);
  blend(nn_, n * n, w);
  blend(nt_, n * seconds, w);
  ++forward_steps_;
}

void SpeculationSwitch::record_drafts(int sequences, int64_t drafted, int64_t accepted,
                                      double seconds) {
  // A step where nothing was drafted (an n-gram drafter with no match yet) says nothing about
  // what drafts yield.
  if (sequences <= 0 || drafted <= 0 || seconds < 0) return;
  const double w = draft_steps_ == 0 ? 1.0 : kDraftWeight;
  blend(drafted_, static_cast<double>(drafted) / sequences, w);
  blend(accepted_, static_cast<double>(accepted) / sequences, w);
  blend(draft_seconds_, seconds / sequences, w);
  ++draft_steps_;
}

double SpeculationSwitch::forward_seconds(double n) const {
  if (forward_steps_ == 0 || n_ <= 0) return 0;
  const double var = nn_ - n_ * n_;
  // Too little spread in the batch sizes seen to fit a slope: assume time proportional to entries
  // (the compute-bound case, where drafts pay least).
  if (var < 1.0) return t_ * n / n_;
  const double b = std::max(0.0, (nt_ - n_ * t_) / var);
  const double a = std::max(0.0, t_ - b * n_);
  return a + b * n;
}

SpeculationSwitch::Estimate SpeculationSwitch::estimate(int m) const {
  Estimate e;
  if (forward_steps_ == 0 || m <= 0) return e;
  const double plain = forward_seconds(m);
  // Per sequence: drafted_ entries beyond its own, accepted_ of them kept, draft_seconds_ spent.
  const double draft = forward_seconds(m * (1 + drafted_)) + m * draft_seconds_;
  if (plain > 0) e.plain_tokens_per_second = m / plain;
  if (draft > 0 && draft_steps_ > 0) e.draft_tokens_per_second = m * (1 + accepted_) / draft;
  return e;
}

bool SpeculationSwitch::allow(int m) {
  if (draft_steps_ < kWarmSteps) return true;
  const Estimate e = estimate(m);
  if (e.draft_tokens_per_second >= e.plain_tokens_per_second) {
    explore_interval_ = kExploreEvery;
    since_explored_ = 0;
    return true;
  }
  if (++since_explored_ < explore_interval_) return false;
  // An exploration: its drafts re-measure k, alpha and d. Each one that leaves drafting behind
  // doubles the wait for the next (a draft model catching up on every sequence is not free).
  since_explored_ = 0;
  explore_interval_ = std::min<int64_t>(2 * explore_interval_, kMaxExploreEvery);
  return true;
}

}  // namespace pareto::engine
