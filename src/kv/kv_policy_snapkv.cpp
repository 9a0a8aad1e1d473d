// `snapkv` (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", NeurIPS
// 2024): an entry's importance is the attention the last queries (the observation window: the end
// of the prompt, then the newest generated tokens) give it, smoothed by average pooling over
// neighbouring entries (kernel 5, so that clusters survive together); the window's own entries are
// kept, the rest of the budget goes to the most important older entries. The paper compresses the
// prompt once; here the same rule runs whenever the budget is exceeded.
#include <algorithm>
#include <deque>
#include <numeric>

#include "kv/kv_policy.h"

namespace pareto::kv {

namespace {

constexpr int kWindow = 32;  // observation window (queries), as the paper's default
constexpr int kPool = 5;     // pooling kernel over entries

class SnapKvPolicy final : public KvPolicy {
 public:
  explicit SnapKvPolicy(const KvShape& shape)
      : heads_(shape.n_kv_heads), rows_(static_cast<size_t>(shape.n_layers * shape.n_kv_heads)) {}
  std::string_view name() const override { return "snapkv"; }
  bool needs_attention() const override { return true; }
  // A one-token prompt has no query before the generation to tell what matters.
  int min_prompt_tokens() const override { return 2; }

  void observe(int layer, int head, std::span<const float> weights, int n_queries,
               int length) override {
    std::deque<std::vector<float>>& rows = at(layer, head);
    for (int q = std::max(0, n_queries - kWindow); q < n_queries; ++q) {
      const float* row = weights.data() + static_cast<size_t>(q) * static_cast<size_t>(length);
      rows.emplace_back(row, row + length);
      if (static_cast<int>(rows.size()) > kWindow) rows.pop_front();
    }
  }

  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    const int length = cache.length(layer, head);
    std::vector<float> importance(static_cast<size_t>(length), 0.0f);
    for (const std::vector<float>& row : at(layer, head)) {
      for (size_t e = 0; e < row.size() && e < importance.size(); ++e) importance[e] += row[e];
    }
    std::vector<float> pooled(importance.size(), 0.0f);
    for (int e = 0; e < length; ++e) {
      float sum = 0;
      int n = 0;
      for (int j = std::max(0, e - kPool / 2); j <= std::min(length - 1, e + kPool / 2); ++j) {
        sum += importance[static_cast<size_t>(j)];
        ++n;
      }
      pooled[static_cast<size_t>(e)] = sum / static_cast<float>(n);
    }
    const int window = std::min(kWindow, keep);
    const int old = length - window;
    const int top = keep - window;
    std::vector<int> idx(static_cast<size_t>(old));
    std::iota(idx.begin(), idx.end(), 0);
    std::nth_element(idx.begin(), idx.begin() + top, idx.end(), [&](int a, int b) {
      return pooled[static_cast<size_t>(a)] != pooled[static_cast<size_t>(b)]
                 ? pooled[static_cast<size_t>(a)] > pooled[static_cast<size_t>(b)]
                 : a < b;
    });
    idx.resize(static_cast<size_t>(top));
    for (int i = old; i < length; ++i) idx.push_back(i);
    return complement(std::move(idx), length);
  }

  void erased(int layer, int head, std::span<const int> indices) override {
    for (std::vector<float>& row : at(layer, head)) {
      size_t next = 0, out = 0;
      for (size_t j = 0; j < row.size(); ++j) {
        if (next < indices.size() && indices[next] == static_cast<int>(j)) {
          ++next;
          continue;
        }
        row[out++] = row[j];
      }
      row.resize(out);
    }
  }
  void truncated(int layer, int head, int length) override {
    for (std::vector<float>& row : at(layer, head)) {
      if (static_cast<int>(row.size()) > length) row.resize(static_cast<size_t>(length));
    }
  }

 private:
  std::deque<std::vector<float>>& at(int layer, int head) {
    return rows_[static_cast<size_t>(layer * heads_ + head)];
  }
  int heads_;
  std::vector<std::deque<std::vector<float>>> rows_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_snapkv_policy(const KvShape& shape) {
  return std::make_unique<SnapKvPolicy>(shape);
}

}  // namespace pareto::kv
