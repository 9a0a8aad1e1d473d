#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "base/check.h"

namespace pareto::sampling {
namespace {

// Descending logit; equal logits keep the lower id first so every choice is deterministic.
// A lambda, not a function: std::sort and friends inline it (through a function pointer every
// comparison was a call: a third of a sampled step on a 4096-token vocabulary).
constexpr auto higher_logit = [](const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

}  // namespace

Candidates Candidates::from_logits(std::span<const float> logits) {
  Candidates c;
  c.assign(logits);
  return c;
}

void Candidates::assign(std::span<const float> logits) {
  items.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    items[i] = Candidate{static_cast<int32_t>(i), logits[i], 0.0f};
  }
  sorted = false;
}

void Candidates::sort_descending() {
  if (sorted) return;
  std::sort(items.begin(), items.end(), higher_logit);
  sorted = true;
}

void Candidates::softmax() {
  if (items.empty()) return;
  sort_descending();
  const double max_logit = items.front().logit;
  double sum = 0.0;
  for (auto& c : items) {
    const double e = std::exp(static_cast<double>(c.logit) - max_logit);
    c.prob = static_cast<float>(e);
    sum += e;
  }
  for (auto& c : items) c.prob = static_cast<float>(c.prob / sum);
}

void RepetitionPenalty::apply(Candidates& candidates, std::span<const int32_t> history) {
  if (penalty_ == 1.0f || last_n_ <= 0 || history.empty()) return;
  const size_t n = std::min(history.size(), static_cast<size_t>(last_n_));
  const std::unordered_set<int32_t> seen(history.end() - static_cast<std::ptrdiff_t>(n),
                                         history.end());
  for (auto& c : candidates.items) {
    if (!seen.contains(c.id)) continue;
    c.logit = c.logit > 0.0f ? c.logit / penalty_ : c.logit * penalty_;
  }
  candidates.sorted = false;
}

void FrequencyPresencePenalty::apply(Candidates& candidates, std::span<const int32_t> history) {
  if ((frequency_ == 0.0f && presence_ == 0.0f) || last_n_ <= 0 || history.empty()) return;
  const size_t n = std::min(history.size(), static_cast<size_t>(last_n_));
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history.size() - n; i < history.size(); ++i) ++counts[history[i]];
  for (auto& c : candidates.items) {
    const auto it = counts.find(c.id);
    if (it == counts.end()) continue;
    c.logit -= static_cast<float>(it->second) * frequency_ + presence_;
  }
  candidates.sorted = false;
}

void LogitBias::apply(Candidates& candidates, std::span<const int32_t> /*history*/) {
  auto& items = candidates.items;
  for (const auto& [id, bias] : bias_) {
    // Fresh candidates are in id order (Candidates::assign); otherwise search.
    const size_t i = static_cast<size_t>(id);
    if (i < items.size() && items[i].id == id) {
      items[i].logit += bias;
      continue;
    }
    for (auto& c : items) {
      if (c.id == id) c.logit += bias;
    }
  }
  candidates.sorted = false;
}

void TopK::apply(Candidates& candidates, std::span<const int32_t> /*history*/) {
  if (k_ <= 0 || static_cast<size_t>(k_) >= candidates.items.size()) return;
  auto& items = candidates.items;
  if (!candidates.sorted) {
    std::partial_sort(items.begin(), items.begin() + k_, items.end(), higher_logit);
    candidates.sorted = true;  // the kept prefix is sorted
  }
  items.resize(static_cast<size_t>(k_));
}

void TopP::apply(Candidates& candidates, std::span<const int32_t> /*history*/) {
  if (p_ >= 1.0f || candidates.items.empty()) return;
  candidates.softmax();
  double mass = 0.0;
  size_t keep = candidates.items.size();
  for (size_t i = 0; i < candidates.items.size(); ++i) {
    mass += candidates.items[i].prob;
    if (mass >= p_) {
      keep = i + 1;
      break;
    }
  }
  candidates.items.resize(keep);
}

void MinP::apply(Candidates& candidates, std::span<const int32_t> /*history*/) {
  if (p_ <= 0.0f || candidates.items.empty()) return;
  // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p): no softmax needed.
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const auto& c : candidates.items) max_logit = std::max(max_logit, c.logit);
  const float min_logit = max_logit + std::log(p_);
  std::erase_if(candidates.items, [&](const Candidate& c) { return c.logit < min_logit; });
}

void Temperature::apply(Candidates& candidates, std::span<const int32_t> /*history*/) {
  if (candidates.items.empty()) return;
  if (t_ <= 0.0f) {  // the limit of t -> 0: only the argmax survives
    candidates.sort_descending();
    candidates.items.resize(1);
    return;
  }
  for (auto& c : candidates.items) c.logit /= t_;
}

int32_t GreedyPicker::pick(Candidates& candidates) {
  PARETO_CHECK(!candidates.items.empty());
  const auto best =
      std::min_element(candidates.items.begin(), candidates.items.end(), higher_logit);
  return best->id;
}

double TokenPicker::uniform() {
  PARETO_CHECK_MSG(false, "TokenPicker::uniform: this picker draws no random numbers");
  return 0.0;
}

double RandomPicker::uniform() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

int32_t RandomPicker::pick(Candidates& candidates) {
  PARETO_CHECK(!candidates.items.empty());
  candidates.softmax();
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cumulative = 0.0;
  for (const auto& c : candidates.items) {
    cumulative += c.prob;
    if (u < cumulative) return c.id;
  }
  return candidates.items.back().id;  // u landed in the rounding slack at the top
}

SamplerChain SamplerChain::from_params(const SamplingParams& params) {
  const bool greedy = params.temperature <= 0.0f;
  SamplerChain chain(greedy ? std::unique_ptr<TokenPicker>(std::make_unique<GreedyPicker>())
                            : std::make_unique<RandomPicker>(params.seed));
  chain.greedy_ = greedy;
  if (!params.logit_bias.empty()) chain.add(std::make_unique<LogitBias>(params.logit_bias));
  if (params.repeat_penalty != 1.0f && params.repeat_last_n > 0) {
    chain.add(std::make_unique<RepetitionPenalty>(params.repeat_penalty, params.repeat_last_n));
  }
  if ((params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) &&
      params.repeat_last_n > 0) {
    chain.add(std::make_unique<FrequencyPresencePenalty>(
        params.frequency_penalty, params.presence_penalty, params.repeat_last_n));
  }
  if (greedy) return chain;  // the filters below never change the argmax
  if (params.top_k > 0) chain.add(std::make_unique<TopK>(params.top_k));
  if (params.top_p < 1.0f) chain.add(std::make_unique<TopP>(params.top_p));
  if (params.min_p > 0.0f) chain.add(std::make_unique<MinP>(params.min_p));
  chain.add(std::make_unique<Temperature>(params.temperature));
  return chain;
}

SamplerChain& SamplerChain::add(std::unique_ptr<LogitProcessor> processor) {
  processors_.push_back(std::move(processor));
  return *this;
}

Candidates SamplerChain::process(std::span<const float> logits,
                                 std::span<const int32_t> history) const {
  Candidates candidates;
  process(logits, history, candidates);
  return candidates;
}

void SamplerChain::process(std::span<const float> logits, std::span<const int32_t> history,
                           Candidates& candidates) const {
  PARETO_CHECK(!logits.empty());
  if (greedy_ && processors_.empty()) {
    // The argmax straight from the logits (the first of equal maxima, as below), without building
    // n_vocab candidates: speculative decoding calls this per draft token and per verified entry.
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    candidates.items.assign(1, Candidate{static_cast<int32_t>(best), logits[best], 1.0f});
    candidates.sorted = true;
    return;
  }
  candidates.assign(logits);
  for (const auto& p : processors_) p->apply(candidates, history);
  if (greedy_) {  // the distribution of an argmax pick: all mass on it (found in one pass)
    auto& items = candidates.items;
    std::iter_swap(items.begin(), std::min_element(items.begin(), items.end(), higher_logit));
    items.resize(1);
    items[0].prob = 1.0f;
    candidates.sorted = true;
    return;
  }
  candidates.softmax();
}

int32_t SamplerChain::pick(Candidates& candidates) {
  return picker_->pick(candidates);
}

int32_t SamplerChain::sample(std::span<const float> logits, std::span<const int32_t> history) {
  process(logits, history, scratch_);
  return pick(scratch_);
}

}  // namespace pareto::sampling
