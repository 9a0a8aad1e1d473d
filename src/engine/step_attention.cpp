#include "engine/step_attention.h"

#include <algorithm>

namespace pareto::engine {

void StepAttention::begin_step(int n_seqs) {
  policies_.assign(static_cast<size_t>(n_seqs), nullptr);
  if (records_.size() < static_cast<size_t>(n_seqs)) records_.resize(static_cast<size_t>(n_seqs));
  for (auto& r : records_) r.clear();
  any_ = false;
}

void StepAttention::set(int seq, kv::KvPolicy* policy) {
  policies_[static_cast<size_t>(seq)] = policy;
  any_ = any_ || (policy != nullptr && policy->needs_attention());
}

bool StepAttention::wants(int seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < policies_.size() &&
         policies_[static_cast<size_t>(seq)] != nullptr &&
         policies_[static_cast<size_t>(seq)]->needs_attention();
}

void StepAttention::observe(int seq, int layer, int head, std::span<const float> weights,
                            int n_queries, int group, int length) {
  records_[static_cast<size_t>(seq)].push_back(
      {layer, head, n_queries, group, length, std::vector<float>(weights.begin(), weights.end())});
}

void StepAttention::commit(int seq, int32_t first_position, const kv::KvCache& cache) {
  kv::KvPolicy* policy = policies_[static_cast<size_t>(seq)];
  if (policy == nullptr) return;
  for (const Record& r : records_[static_cast<size_t>(seq)]) {
    const int rows = std::clamp(cache.n_tokens() - first_position, 0, r.n_queries);
    const int length = std::min(r.length, cache.length(r.layer, r.head));
    if (rows == 0) continue;
    const int n_rows = rows * r.group;  // a query's rows are consecutive
    trimmed_.resize(static_cast<size_t>(n_rows) * static_cast<size_t>(length));
    for (int q = 0; q < n_rows; ++q) {
      std::copy_n(r.weights.begin() + static_cast<ptrdiff_t>(q) * r.length, length,
                  trimmed_.begin() + static_cast<ptrdiff_t>(q) * length);
    }
    policy->observe(r.layer, r.head, trimmed_, rows, r.group, length);
  }
  records_[static_cast<size_t>(seq)].clear();
  const kv::KvShape s = cache.shape();
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) policy->truncated(l, h, cache.length(l, h));
  }
}

}  // namespace pareto::engine
