#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace pareto::sampling {

TokenLogprobs token_logprobs(std::span<const float> logits, int32_t token, int n_top) {
  PARETO_CHECK(!logits.empty() && token >= 0 && static_cast<size_t>(token) < logits.size());
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  const auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - log_z);
  };
  TokenLogprobs out;
  out.token = token;
  out.logprob = logprob(token);
  if (n_top <= 0) return out;
  // The n_top largest logits: a small sorted list, best first (ties: lower id first).
  const auto better = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::vector<int32_t> best;
  best.reserve(static_cast<size_t>(n_top) + 1);
  for (int32_t id = 0; id < static_cast<int32_t>(logits.size()); ++id) {
    if (static_cast<int>(best.size()) == n_top && !better(id, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), id, better), id);
    if (static_cast<int>(best.size()) > n_top) best.pop_back();
  }
  out.top.reserve(best.size());
  for (int32_t id : best) out.top.emplace_back(id, logprob(id));
  return out;
}

}  // namespace pareto::sampling
