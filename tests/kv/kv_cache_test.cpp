#include "kv/kv_cache.h"

#include <vector>

#include <gtest/gtest.h>

namespace pareto::kv {
namespace {

// Key/value contents that identify (layer, head, position).
std::vector<float> entry(int layer, int head, int pos, int head_dim, float sign) {
  std::vector<float> v(static_cast<size_t>(head_dim));
  for (int d = 0; d < head_dim; ++d) v[d] = sign * (layer * 1000 + head * 100 + pos + d * 0.01f);
  return v;
}

void append_tokens(KvCache& cache, int first_pos, int n) {
  const KvShape& s = cache.shape();
  for (int p = first_pos; p < first_pos + n; ++p) {
    for (int l = 0; l < s.n_layers; ++l) {
      for (int h = 0; h < s.n_kv_heads; ++h) {
        cache.append(l, h, p, entry(l, h, p, s.head_dim, 1), entry(l, h, p, s.head_dim, -1));
      }
    }
  }
  cache.advance(n);
}

void expect_contents(const KvCache& cache, int n) {
  const KvShape& s = cache.shape();
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      ASSERT_EQ(cache.length(l, h), n);
      for (int j = 0; j < n; ++j) {
        EXPECT_EQ(cache.positions(l, h)[j], j);
        const auto k = entry(l, h, j, s.head_dim, 1);
        const auto v = entry(l, h, j, s.head_dim, -1);
        for (int d = 0; d < s.head_dim; ++d) {
          ASSERT_EQ(cache.keys(l, h)[j * s.head_dim + d], k[d]);
          ASSERT_EQ(cache.values(l, h)[j * s.head_dim + d], v[d]);
        }
      }
    }
  }
}

TEST(KvCache, StartsEmptyWithShape) {
  KvCache cache({2, 3, 4, 10});
  EXPECT_EQ(cache.n_tokens(), 0);
  EXPECT_EQ(cache.capacity(), 10);
  EXPECT_EQ(cache.shape().n_layers, 2);
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 3; ++h) EXPECT_EQ(cache.length(l, h), 0);
  }
}

TEST(KvCache, AppendKeepsEntriesAndPositionsPerLayerAndHead) {
  KvCache cache({2, 3, 4, 10});
  append_tokens(cache, 0, 3);
  append_tokens(cache, 3, 4);
  EXPECT_EQ(cache.n_tokens(), 7);
  expect_contents(cache, 7);
}

TEST(KvCache, TruncateRollsBackAndAppendContinues) {
  KvCache cache({2, 2, 3, 8});
  append_tokens(cache, 0, 8);
  cache.truncate(5);
  EXPECT_EQ(cache.n_tokens(), 5);
  expect_contents(cache, 5);
  cache.truncate(9);  // beyond the current length: no change
  EXPECT_EQ(cache.n_tokens(), 5);
  append_tokens(cache, 5, 3);  // capacity is free again
  expect_contents(cache, 8);
  cache.clear();
  EXPECT_EQ(cache.n_tokens(), 0);
  expect_contents(cache, 0);
}

// Truncation is by position, not by index: entries stored out of position order are filtered.
TEST(KvCache, TruncateFiltersByStoredPosition) {
  KvCache cache({1, 1, 2, 6});
  const std::vector<int> order{0, 4, 1, 5, 2, 3};
  for (int p : order) cache.append(0, 0, p, entry(0, 0, p, 2, 1), entry(0, 0, p, 2, -1));
  cache.advance(6);
  cache.truncate(3);
  ASSERT_EQ(cache.length(0, 0), 3);
  const std::vector<int> kept{0, 1, 2};
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(cache.positions(0, 0)[j], kept[j]);
    EXPECT_EQ(cache.keys(0, 0)[j * 2], entry(0, 0, kept[j], 2, 1)[0]);
    EXPECT_EQ(cache.values(0, 0)[j * 2 + 1], entry(0, 0, kept[j], 2, -1)[1]);
  }
}

TEST(KvCacheDeathTest, AppendBeyondCapacityAborts) {
  KvCache cache({1, 1, 2, 1});
  const std::vector<float> kv{1, 2};
  cache.append(0, 0, 0, kv, kv);
  EXPECT_DEATH(cache.append(0, 0, 1, kv, kv), "capacity");
}

}  // namespace
}  // namespace pareto::kv
