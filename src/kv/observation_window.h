// The attention rows of the latest queries, per (layer, KV head): the observation window that
// SnapKV-style policies score entries by (kv_policy_snapkv.cpp, kv_policy_defensive.cpp). Each
// query keeps its `group` rows (one per query head) as wide as the cache was when it attended;
// rows follow the cache's evictions and rollbacks.
#pragma once

#include <deque>
#include <span>
#include <vector>

#include "kv/kv_cache.h"

namespace pareto::kv {

class ObservationWindow {
 public:
  ObservationWindow(const KvShape& shape, int queries)
      : heads_(shape.n_kv_heads),
        queries_(queries),
        slots_(static_cast<size_t>(shape.n_layers * shape.n_kv_heads)) {}

  int queries() const { return queries_; }

  // KvPolicy::observe's arguments: keeps the last `queries()` queries.
  void push(int layer, int head, std::span<const float> weights, int n_queries, int group,
            int length) {
    std::deque<Query>& d = at(layer, head);
    for (int q = std::max(0, n_queries - queries_); q < n_queries; ++q) {
      Query query{length, {}};
      query.rows.reserve(static_cast<size_t>(group));
      for (int j = 0; j < group; ++j) {
        const float* row = weights.data() + static_cast<size_t>(q * group + j) * length;
        query.rows.emplace_back(row, row + length);
      }
      d.push_back(std::move(query));
      if (static_cast<int>(d.size()) > queries_) d.pop_front();
    }
  }

  // fn(row) for every stored row of (layer, head); a row may be shorter than the cache (entries
  // appended after its query attended).
  template <class Fn>
  void for_each_row(int layer, int head, Fn&& fn) const {
    for (const Query& q : slots_[static_cast<size_t>(layer * heads_ + head)]) {
      for (const std::vector<float>& row : q.rows) fn(std::span<const float>(row));
    }
  }

  void erase(int layer, int head, std::span<const int> indices) {
    for (Query& q : at(layer, head)) {
      for (std::vector<float>& row : q.rows) {
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
  }

  void truncate(int layer, int head, int length) {
    for (Query& q : at(layer, head)) {
      for (std::vector<float>& row : q.rows) {
        if (static_cast<int>(row.size()) > length) row.resize(static_cast<size_t>(length));
      }
    }
  }

 private:
  struct Query {
    int length;
    std::vector<std::vector<float>> rows;  // [group][length]
  };
  std::deque<Query>& at(int layer, int head) {
    return slots_[static_cast<size_t>(layer * heads_ + head)];
  }
  int heads_;
  int queries_;
  std::vector<std::deque<Query>> slots_;
};

}  // namespace pareto::kv
