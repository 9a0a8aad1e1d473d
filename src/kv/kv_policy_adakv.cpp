// `adakv` (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for
// Efficient LLM Inference", NeurIPS 2025), on SnapKV's scores (their Ada-SnapKV): a layer's budget
// is shared by its KV heads instead of split evenly. Heads whose attention is concentrated need
// few entries, diffuse ones many, so the layer keeps its highest-scoring entries across all heads
// (scores are sums of softmax weights, comparable between heads); every head keeps its
// observation window and at least a fifth of the even share of the rest (the paper's safeguard).
#include <algorithm>
#include <cstdint>
#include <functional>

#include "kv/kv_policy.h"
#include "kv/observation_window.h"

namespace pareto::kv {
namespace {

constexpr double kFloor = 0.2;  // the safeguard: a head keeps this share of the even split

class AdaKvPolicy final : public WindowScoredPolicy {
 public:
  explicit AdaKvPolicy(const KvShape& shape)
      : WindowScoredPolicy(shape, kSnapKvWindow, ObservationWindow::Reduce::kSum) {}
  std::string_view name() const override { return "adakv"; }

  bool shares_budget_between_heads() const override { return true; }

  void head_keeps(const KvCache& cache, int layer, int keep, std::span<int> keeps) override {
    const int heads = static_cast<int>(keeps.size());
    const int recent = std::min(kSnapKvWindow, keep);
    const int floor = static_cast<int>(kFloor * (keep - recent));
    // Each head first keeps its window and its floor (or all it holds); the rest of the layer's
    // budget goes to the highest scores beyond those, over all heads. Candidates: (score, rank
    // within its head, head), so that equal scores are shared in turn rather than all to head 0.
    struct Candidate {
      float score;
      int rank;
      int head;
    };
    std::vector<Candidate> pool;
    int64_t free = int64_t{heads} * keep;
    for (int h = 0; h < heads; ++h) {
      const int length = cache.length(layer, h);
      std::vector<float> score = pooled_importance(window_, layer, h, length, kSnapKvPool);
      score.resize(static_cast<size_t>(std::max(0, length - recent)));  // the window stays
      std::sort(score.begin(), score.end(), std::greater<>());
      const int reserved = std::min(floor, static_cast<int>(score.size()));
      keeps[static_cast<size_t>(h)] = std::min(length, recent + reserved);
      free -= keeps[static_cast<size_t>(h)];
      for (size_t j = static_cast<size_t>(reserved); j < score.size(); ++j) {
        pool.push_back({score[j], static_cast<int>(j), h});
      }
    }
    const auto n = static_cast<size_t>(std::clamp<int64_t>(free, 0, std::ssize(pool)));
    if (n == 0) return;
    std::nth_element(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(n - 1), pool.end(),
                     [](const Candidate& a, const Candidate& b) {
                       if (a.score != b.score) return a.score > b.score;
                       return a.rank != b.rank ? a.rank < b.rank : a.head < b.head;
                     });
    for (size_t j = 0; j < n; ++j) ++keeps[static_cast<size_t>(pool[j].head)];
  }

  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    return snapkv_select(window_, cache, layer, head, keep);
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_adakv_policy(const KvShape& shape) {
  return std::make_unique<AdaKvPolicy>(shape);
}

}  // namespace pareto::kv
