// `h2o`: heavy hitters (Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference
// of Large Language Models", NeurIPS 2023): every entry accumulates the attention weight all later
// queries give it; the budget is split between the most recent entries and, among the older ones,
// those with the largest accumulated weight (the paper's equal split).
#include <algorithm>

#include "kv/kv_policy.h"

namespace pareto::kv {

namespace {

class H2OPolicy final : public KvPolicy {
 public:
  explicit H2OPolicy(const KvShape& shape) : scores_(shape) {}
  std::string_view name() const override { return "h2o"; }
  bool needs_attention() const override { return true; }

  void observe(int layer, int head, std::span<const float> weights, int n_queries, int group,
               int length) override {
    std::vector<float>& s = scores_.sized(layer, head, length);
    for (int q = 0; q < n_queries * group; ++q) {
      const float* row = weights.data() + static_cast<size_t>(q) * static_cast<size_t>(length);
      for (int e = 0; e < length; ++e) s[static_cast<size_t>(e)] += row[e];
    }
  }

  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    const int length = cache.length(layer, head);
    return drop_all_but_recent_and_top(scores_.sized(layer, head, length), keep, keep - keep / 2);
  }

  void erased(int layer, int head, std::span<const int> indices) override {
    scores_.erase(layer, head, indices);
  }
  void truncated(int layer, int head, int length) override {
    scores_.truncate(layer, head, length);
  }

 private:
  EntryScores scores_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_h2o_policy(const KvShape& shape) {
  return std::make_unique<H2OPolicy>(shape);
}

}  // namespace pareto::kv
