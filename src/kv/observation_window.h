// The attention rows of the latest queries, per (layer, KV head): the observation window that
// SnapKV-style policies score entries by (kv_policy_snapkv.cpp, kv_policy_defensive.cpp). Each
// query keeps one row, its query heads' rows reduced to one (summed, or their maximum) when it
// arrives (a window of 32 queries x every head of a 32k cache would otherwise hold gigabytes), as
// wide as the cache was when it attended; rows follow the cache's evictions and rollbacks.
#pragma once

#include <algorithm>
#include <deque>
#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_policy.h"

namespace pareto::kv {

class ObservationWindow {
 public:
  enum class Reduce { kSum, kMax };
  ObservationWindow(const KvShape& shape, int queries, Reduce reduce)
      : heads_(shape.n_kv_heads),
        queries_(queries),
        reduce_(reduce),
        slots_(static_cast<size_t>(shape.n_layers * shape.n_kv_heads)) {}

  int queries() const { return queries_; }

  // KvPolicy::observe's arguments: keeps the last `queries()` queries.
  void push(int layer, int head, std::span<const float> weights, int n_queries, int group,
            int length) {
    std::deque<std::vector<float>>& d = at(layer, head);
    for (int q = std::max(0, n_queries - queries_); q < n_queries; ++q) {
      const float* rows = weights.data() + static_cast<size_t>(q) * group * length;
      std::vector<float> row(rows, rows + length);
      for (int j = 1; j < group; ++j) {
        const float* r = rows + static_cast<size_t>(j) * length;
        for (int e = 0; e < length; ++e) {
          float& x = row[static_cast<size_t>(e)];
          x = reduce_ == Reduce::kSum ? x + r[e] : std::max(x, r[e]);
        }
      }
      d.push_back(std::move(row));
      if (static_cast<int>(d.size()) > queries_) d.pop_front();
    }
  }

  // fn(row) for every stored row of (layer, head); a row may be shorter than the cache (entries
  // appended after its query attended).
  template <class Fn>
  void for_each_row(int layer, int head, Fn&& fn) const {
    for (const std::vector<float>& row : slots_[static_cast<size_t>(layer * heads_ + head)]) {
      fn(std::span<const float>(row));
    }
  }

  void erase(int layer, int head, std::span<const int> indices) {
    for (std::vector<float>& row : at(layer, head)) erase_indices(row, indices);
  }

  void truncate(int layer, int head, int length) {
    for (std::vector<float>& row : at(layer, head)) {
      if (static_cast<int>(row.size()) > length) row.resize(static_cast<size_t>(length));
    }
  }

 private:
  std::deque<std::vector<float>>& at(int layer, int head) {
    return slots_[static_cast<size_t>(layer * heads_ + head)];
  }
  int heads_;
  int queries_;
  Reduce reduce_;
  std::vector<std::deque<std::vector<float>>> slots_;
};

// Base of the policies that score entries by the observation window (snapkv, pyramid, defensive):
// it feeds the window and keeps it in step with the cache.
class WindowScoredPolicy : public KvPolicy {
 public:
  WindowScoredPolicy(const KvShape& shape, int queries, ObservationWindow::Reduce reduce)
      : window_(shape, queries, reduce) {}
  bool needs_attention() const override { return true; }
  // A one-token prompt has no query before the generation to tell what matters.
  int min_prompt_tokens() const override { return 2; }
  void observe(int layer, int head, std::span<const float> weights, int n_queries, int group,
               int length) override {
    window_.push(layer, head, weights, n_queries, group, length);
  }
  void erased(int layer, int head, std::span<const int> indices) override {
    window_.erase(layer, head, indices);
  }
  void truncated(int layer, int head, int length) override {
    window_.truncate(layer, head, length);
  }

 protected:
  ObservationWindow window_;
};

// SnapKV's importance of (layer, head)'s `length` entries: the window's rows summed, then averaged
// over `pool` neighbouring entries (so that clusters survive together).
inline std::vector<float> pooled_importance(const ObservationWindow& window, int layer, int head,
                                            int length, int pool) {
  std::vector<float> importance(static_cast<size_t>(length), 0.0f);
  window.for_each_row(layer, head, [&](std::span<const float> row) {
    for (size_t e = 0; e < row.size() && e < importance.size(); ++e) importance[e] += row[e];
  });
  std::vector<float> pooled(importance.size(), 0.0f);
  for (int e = 0; e < length; ++e) {
    float sum = 0;
    int n = 0;
    for (int j = std::max(0, e - pool / 2); j <= std::min(length - 1, e + pool / 2); ++j) {
      sum += importance[static_cast<size_t>(j)];
      ++n;
    }
    pooled[static_cast<size_t>(e)] = sum / static_cast<float>(n);
  }
  return pooled;
}

// SnapKV's observation window (queries, the paper's default) and pooling kernel over entries, and
// its choice of what (layer, head) evicts to keep `keep`: its window's entries stay, then the
// highest pooled importance (snapkv, pyramid, adakv).
constexpr int kSnapKvWindow = 32;
constexpr int kSnapKvPool = 5;
inline std::vector<int> snapkv_select(const ObservationWindow& window, const KvCache& cache,
                                      int layer, int head, int keep) {
  const std::vector<float> pooled =
      pooled_importance(window, layer, head, cache.length(layer, head), kSnapKvPool);
  return drop_all_but_recent_and_top(pooled, keep, std::min(kSnapKvWindow, keep));
}

}  // namespace pareto::kv
