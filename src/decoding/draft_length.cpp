#include "decoding/draft_length.h"

#include <algorithm>

namespace pareto::decoding {
namespace {

// The chance a position passes when nothing is known of it or of any earlier one.
constexpr double kFirstPrior = 0.5;

// Rate of position j from counts c, its prior `prior` weighing `weight` verifications.
double rate_at(const PassCounts& c, size_t j, double prior, double weight) {
  return (c.accepted[j] + prior * weight) / (c.offered[j] + weight);
}

}  // namespace

void PassCounts::add(int drafted, int accepted_tokens, double decay) {
  for (size_t j = 0; j < offered.size(); ++j) {
    offered[j] *= decay;
    accepted[j] *= decay;
  }
  // Position j was tried when the draft reached it and every earlier position passed.
  const int tried = std::min({drafted, accepted_tokens + 1, kPositions});
  for (int j = 0; j < tried; ++j) {
    offered[static_cast<size_t>(j)] += 1;
    if (j < accepted_tokens) accepted[static_cast<size_t>(j)] += 1;
  }
}

namespace {

// The entry of `name` in `stats`, made (value-initialized) on first use.
template <typename Stats>
Stats& entry(std::map<std::string, Stats, std::less<>>& stats, std::string_view name) {
  const auto it = stats.find(name);
  if (it != stats.end()) return it->second;
  return stats.emplace(std::string(name), Stats{}).first->second;
}

}  // namespace

DraftLengthStats& DraftLengthMemory::stats_for(std::string_view drafter_name) {
  return entry(stats_, drafter_name);
}

DraftModelStats& DraftLengthMemory::model_stats_for(std::string_view drafter_name) {
  return entry(model_stats_, drafter_name);
}

CostAwareLength::CostAwareLength(std::unique_ptr<Drafter> inner, DraftLengthMemory* memory,
                                 std::string_view stats_name)
    : inner_(std::move(inner)),
      shared_(memory == nullptr
                  ? &own_
                  : &memory->stats_for(stats_name.empty() ? inner_->name() : stats_name)) {}

double CostAwareLength::pass_rate(int position) const {
  double shared_rate = kFirstPrior;
  double rate = kFirstPrior;
  for (int j = 0; j <= std::min(position, PassCounts::kPositions - 1); ++j) {
    const auto i = static_cast<size_t>(j);
    shared_rate = rate_at(shared_->passes, i, shared_rate, kPriorWeight);
    rate = rate_at(sequence_, i, shared_rate, kPriorWeight);
  }
  return rate;
}

int CostAwareLength::choose(int available) const {
  available = std::clamp(available, 0, PassCounts::kPositions);
  const VerifyCostFit& cost = shared_->cost;
  if (available == 0 || !cost.ready()) return available;
  const double step = cost.step();
  const double per_entry = cost.per_entry();
  if (step <= 0) return available;
  int best = 0;
  double best_rate = 1.0 / step;  // k = 0: a plain step, one token
  double shared_rate = kFirstPrior;
  double rate = kFirstPrior;
  double all_pass = 1.0;  // the chance that positions 0..j all pass
  double expected = 1.0;  // E[tokens | j + 1 drafted]
  for (int j = 0; j < available; ++j) {
    const auto i = static_cast<size_t>(j);
    shared_rate = rate_at(shared_->passes, i, shared_rate, kPriorWeight);
    rate = rate_at(sequence_, i, shared_rate, kPriorWeight);
    all_pass *= rate;
    expected += all_pass;
    const double tokens_per_second = expected / (step + per_entry * (j + 1));
    if (tokens_per_second > best_rate) {
      best_rate = tokens_per_second;
      best = j + 1;
    }
  }
  return best;
}

void CostAwareLength::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  inner_->draft(seq, max_tokens, out);
  if (!out.parents.empty()) return;  // trees are sized by their own drafter
  auto k = static_cast<size_t>(choose(static_cast<int>(out.tokens.size())));
  if (k == 0 && !out.tokens.empty() && ++withheld_ >= kProbeAfter) k = 1;
  if (k > 0) withheld_ = 0;
  if (k < out.tokens.size()) out.tokens.resize(k);
  if (k < out.q.size()) out.q.resize(k);
}

void CostAwareLength::verified(const SequenceState& seq, const Verification& v) {
  inner_->verified(seq, v);
  shared_->cost.add(v.drafted + 1, v.verify_seconds);
  shared_->passes.add(v.drafted, v.accepted, kSharedDecay);
  sequence_.add(v.drafted, v.accepted, kSequenceDecay);
}

}  // namespace pareto::decoding
