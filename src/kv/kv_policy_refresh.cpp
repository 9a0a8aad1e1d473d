// `refresh` (Xu, Goyal and Choi, "RefreshKV: Updating Small KV Cache During Long-form
// Generation", ACL 2025): decoding attends to a small cache, and every kRefreshStride forwards one
// forward attends to the whole context again; its attention weights re-select the small cache.
// Nothing is discarded: what the small cache leaves out is parked (KvPolicy::keeps_evicted) and
// comes back before each full-attention forward, so the memory is the full cache's and the gain
// is attention time. Between refreshes the new tokens join the small cache (it grows by at most
// kRefreshStride entries). Prompt forwards attend to everything; the last one selects the first
// small cache, as SnapKV does from the end of the prompt. Selection: the most recent kRecent
// entries, then the highest attention summed over the forward's last kWindow queries and the query
// heads of the KV head.
#include <algorithm>

#include "kv/kv_policy.h"

namespace pareto::kv {
namespace {

constexpr int kWindow = 32;  // queries of a refresh forward that score entries
constexpr int kRecent = 8;   // newest entries always in the small cache

class RefreshPolicy final : public KvPolicy {
 public:
  explicit RefreshPolicy(const KvShape& shape) : scores_(shape) {}
  std::string_view name() const override { return "refresh"; }
  bool keeps_evicted() const override { return true; }
  // Weights are needed only from the forwards that see the whole context.
  bool needs_attention() const override { return full_; }

  bool restore_before_forward(bool prompt) override {
    if (prompt) {
      full_ = true;
      since_refresh_ = 0;
    } else {
      full_ = ++since_refresh_ >= kRefreshStride;
      if (full_) since_refresh_ = 0;
    }
    return full_;
  }

  void observe(int layer, int head, std::span<const float> weights, int n_queries, int group,
               int length) override {
    if (!full_) return;
    std::vector<float>& score = scores_.at(layer, head);
    score.assign(static_cast<size_t>(length), 0.0f);
    for (int q = std::max(0, n_queries - kWindow); q < n_queries; ++q) {
      for (int j = 0; j < group; ++j) {
        const float* row = weights.data() + (static_cast<size_t>(q) * group + j) * length;
        for (int e = 0; e < length; ++e) score[static_cast<size_t>(e)] += row[e];
      }
    }
  }

  // Re-selects only right after a full-attention forward; otherwise the small cache keeps
  // growing until the next refresh.
  std::vector<int> select(const KvCache& cache, int layer, int head, int keep) override {
    if (!full_) return {};
    std::vector<float>& score = scores_.at(layer, head);
    score.resize(static_cast<size_t>(cache.length(layer, head)), 0.0f);
    return drop_all_but_recent_and_top(score, keep, std::min(kRecent, keep));
  }

  // Scores serve only the selection right after the forward that made them.
  void erased(int layer, int head, std::span<const int>) override {
    scores_.at(layer, head).clear();
  }
  void truncated(int layer, int head, int length) override {
    scores_.truncate(layer, head, length);
  }

 private:
  EntryScores scores_;
  bool full_ = true;  // the current forward attends to the whole context
  int since_refresh_ = 0;
};

}  // namespace

std::unique_ptr<KvPolicy> make_refresh_policy(const KvShape& shape) {
  return std::make_unique<RefreshPolicy>(shape);
}

}  // namespace pareto::kv
