// `snapkv` (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", NeurIPS
// 2024): an entry's importance is the attention the last queries (the observation window: the end
// of the prompt, then the newest generated tokens) give it, smoothed by average pooling over
// neighbouring entries (kernel 5, so that clusters survive together); the window's own entries are
// kept, the rest of the budget goes to the most important older entries. The paper compresses the
// prompt once; here the same rule runs whenever the budget is exceeded.
#include <algorithm>
#include <cmath>

#include "kv/kv_policy.h"
#include "kv/observation_window.h"

namespace pareto::kv {

namespace {

class SnapKvPolicy : public WindowScoredPolicy {
 public:
  // A query's heads sum (SnapKV averages over a GQA group: the same ranking).
  explicit SnapKvPolicy(const KvShape& shape)
      : WindowScoredPolicy(shape, kSnapKvWindow, ObservationWindow::Reduce::kSum) {}
  std::string_view name() const override { return "snapkv"; }

  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    return snapkv_select(window_, cache, layer, head, keep);
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_snapkv_policy(const KvShape& shape) {
  return std::make_unique<SnapKvPolicy>(shape);
}

namespace {

// `pyramid` (Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
// Funneling", 2024): attention is spread wide in the lower layers and concentrated in the upper
// ones, so the budget falls linearly from the bottom layer to the top (the top keeps keep / 20,
// the paper's beta, and the bottom what makes the mean `keep`; when that is more than the tokens
// seen, the bottom keeps them all and the top the rest, as the paper's code does); each layer
// chooses as SnapKV does.
class PyramidPolicy final : public SnapKvPolicy {
 public:
  explicit PyramidPolicy(const KvShape& shape) : SnapKvPolicy(shape), layers_(shape.n_layers) {}
  std::string_view name() const override { return "pyramid"; }
  int layer_keep(int layer, int keep, int seen) const override {
    if (layers_ <= 1) return keep;
    constexpr double kBeta = 20;
    double top = keep / kBeta;
    double bottom = 2.0 * keep - top;
    if (bottom > seen) {
      bottom = seen;
      top = 2.0 * keep - bottom;
    }
    const double k = bottom - (bottom - top) * layer / (layers_ - 1);
    return std::max(1, static_cast<int>(std::lround(k)));
  }

 private:
  int layers_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_pyramid_policy(const KvShape& shape) {
  return std::make_unique<PyramidPolicy>(shape);
}

}  // namespace pareto::kv
