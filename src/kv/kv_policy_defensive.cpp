// `defensive` (Feng et al., "Taming the Fragility of KV Cache Eviction in LLM Inference" —
// DefensiveKV, ICLR 2026): SnapKV's scoring (the attention rows of the last 32 queries, average-
// pooled over 5 neighbouring entries, each row rescaled to its sum before pooling) with defensive
// aggregation instead of the mean: an entry's score is its largest pooled weight over the window's
// queries and query heads (the worst case, should it matter again; the heads' maximum is taken
// before pooling, when a query arrives, the paper's after), floored at the mean of those
// scores over the entries (the paper's prior correction, as its code computes it), then weighted by
// the L1 norm of the entry's value (CriticalKV's output-aware step, which DefensiveKV builds on;
// the paper uses the value after the output projection, here the value itself). The window's own
// entries are kept. Left out: the pinning of the tokens holding 90% of the attention mass and the
// per-head budgets chosen by one top-k over all heads (Ada-KV); budgets stay per head.
#include <algorithm>
#include <cmath>

#include "kv/kv_policy.h"
#include "kv/observation_window.h"

namespace pareto::kv {

namespace {

constexpr int kWindow = 32;
constexpr int kPool = 5;

class DefensivePolicy final : public WindowScoredPolicy {
 public:
  explicit DefensivePolicy(const KvShape& shape)
      : WindowScoredPolicy(shape, kWindow, ObservationWindow::Reduce::kMax),
        head_dim_(shape.head_dim) {}
  std::string_view name() const override { return "defensive"; }

  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    const int length = cache.length(layer, head);
    const int recent = std::min(kWindow, keep);
    const int old = length - recent;
    // Worst case over the window's rows of the pooled weights (zero padding, divided by kPool as
    // average pooling does), each row rescaled to its sum before pooling.
    std::vector<float> worst(static_cast<size_t>(length), 0.0f);
    std::vector<float> pooled;
    window_.for_each_row(layer, head, [&](std::span<const float> row) {
      const int n = std::min(static_cast<int>(row.size()), length);
      pooled.assign(static_cast<size_t>(n), 0.0f);
      double before = 0, after = 0;
      for (int e = 0; e < n; ++e) {
        before += row[static_cast<size_t>(e)];
        float sum = 0;
        for (int j = std::max(0, e - kPool / 2); j <= std::min(n - 1, e + kPool / 2); ++j) {
          sum += row[static_cast<size_t>(j)];
        }
        pooled[static_cast<size_t>(e)] = sum / kPool;
        after += pooled[static_cast<size_t>(e)];
      }
      const auto rescale = static_cast<float>(after > 0 ? before / after : 1.0);
      for (int e = 0; e < n; ++e) {
        worst[static_cast<size_t>(e)] =
            std::max(worst[static_cast<size_t>(e)], pooled[static_cast<size_t>(e)] * rescale);
      }
    });
    // Prior correction: no candidate scores below the candidates' mean.
    double mean = 0;
    for (int e = 0; e < old; ++e) mean += worst[static_cast<size_t>(e)];
    const auto floor = static_cast<float>(old > 0 ? mean / old : 0.0);
    // Value norms of the candidates.
    values_.resize(static_cast<size_t>(length) * static_cast<size_t>(head_dim_));
    cache.gather(layer, head, nullptr, values_.data(), nullptr);
    std::vector<float> score(static_cast<size_t>(length), 0.0f);
    for (int e = 0; e < old; ++e) {
      float norm = 0;
      const float* v = values_.data() + static_cast<size_t>(e) * static_cast<size_t>(head_dim_);
      for (int d = 0; d < head_dim_; ++d) norm += std::fabs(v[d]);
      score[static_cast<size_t>(e)] = std::max(worst[static_cast<size_t>(e)], floor) * norm;
    }
    return drop_all_but_recent_and_top(score, keep, recent);
  }

 private:
  int head_dim_;
  std::vector<float> values_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_defensive_policy(const KvShape& shape) {
  return std::make_unique<DefensivePolicy>(shape);
}

}  // namespace pareto::kv
