// `adakv` (Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation for
// Efficient LLM Inference", NeurIPS 2025), on SnapKV's scores (their Ada-SnapKV): a layer's budget
// is shared by its KV heads instead of split evenly. Heads whose attention is concentrated need
// few entries, diffuse ones many, so the layer keeps its highest-scoring entries across all heads
// (scores are sums of softmax weights, comparable between heads); every head keeps its
// observation window and at least a fifth of the even share of the rest (the paper's safeguard).
#include <algorithm>
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

  void head_keeps(const KvCache& cache, int layer, int keep, std::span<int> keeps) override {
    const int heads = static_cast<int>(keeps.size());
    const int recent = std::min(kSnapKvWindow, keep);
    const int floor = static_cast<int>(kFloor * (keep - recent));
    // Candidates beyond each head's window and floor: (score, head).
    std::vector<std::pair<float, int>> pool;
    int free = heads * (keep - recent - floor);
    for (int h = 0; h < heads; ++h) {
      const int length = cache.length(layer, h);
      std::vector<float> score = pooled_importance(window_, layer, h, length, kSnapKvPool);
      score.resize(static_cast<size_t>(std::max(0, length - recent)));  // the window stays
      std::sort(score.begin(), score.end(), std::greater<>());
      const int reserved = std::min(floor, static_cast<int>(score.size()));
      keeps[static_cast<size_t>(h)] = std::min(length, recent + reserved);
      free += floor - reserved;  // a short head's unused floor goes to the others
      for (size_t j = static_cast<size_t>(reserved); j < score.size(); ++j) {
        pool.emplace_back(score[j], h);
      }
    }
    free = std::min(free, static_cast<int>(pool.size()));
    if (free > 0) {
      std::nth_element(pool.begin(), pool.begin() + (free - 1), pool.end(),
                       [](const auto& a, const auto& b) {
                         return a.first > b.first || (a.first == b.first && a.second < b.second);
                       });
      for (int j = 0; j < free; ++j)
        ++keeps[static_cast<size_t>(pool[static_cast<size_t>(j)].second)];
    }
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
