// The paged KV cache: contents per (layer, head), rollback by position, eviction, fork with
// copy-on-write, page accounting, and a property test of thousands of random operations against
// a plain reference model.
#include "kv/kv_cache.h"

#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace pareto::kv {
namespace {

// Key/value contents that identify (layer, head, position) and a tag.
std::vector<float> entry(int layer, int head, int pos, int head_dim, float tag) {
  std::vector<float> v(static_cast<size_t>(head_dim));
  for (int d = 0; d < head_dim; ++d) v[d] = tag * (layer * 1000 + head * 100 + pos + d * 0.01f);
  return v;
}

void append_tokens(KvCache& cache, int first_pos, int n, float tag = 1) {
  const KvShape s = cache.shape();
  ASSERT_TRUE(cache.reserve(n).has_value());
  for (int p = first_pos; p < first_pos + n; ++p) {
    for (int l = 0; l < s.n_layers; ++l) {
      for (int h = 0; h < s.n_kv_heads; ++h) {
        cache.append(l, h, p, entry(l, h, p, s.head_dim, tag).data(),
                     entry(l, h, p, s.head_dim, -tag).data());
      }
    }
  }
  cache.set_n_tokens(first_pos + n);
}

struct Gathered {
  std::vector<float> keys, values;
  std::vector<int32_t> positions;
};

Gathered gather(const KvCache& cache, int l, int h) {
  const int n = cache.length(l, h);
  const auto hd = static_cast<size_t>(cache.shape().head_dim);
  Gathered g{std::vector<float>(n * hd), std::vector<float>(n * hd), std::vector<int32_t>(n)};
  cache.gather(l, h, g.keys.data(), g.values.data(), g.positions.data());
  return g;
}

void expect_contents(const KvCache& cache, const std::vector<int>& positions, float tag = 1) {
  const KvShape s = cache.shape();
  for (int l = 0; l < s.n_layers; ++l) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      const Gathered g = gather(cache, l, h);
      ASSERT_EQ(g.positions, std::vector<int32_t>(positions.begin(), positions.end()));
      for (size_t j = 0; j < positions.size(); ++j) {
        const auto k = entry(l, h, positions[j], s.head_dim, tag);
        const auto v = entry(l, h, positions[j], s.head_dim, -tag);
        for (int d = 0; d < s.head_dim; ++d) {
          ASSERT_EQ(g.keys[j * s.head_dim + d], k[d]);
          ASSERT_EQ(g.values[j * s.head_dim + d], v[d]);
        }
      }
    }
  }
}

std::vector<int> range(int n) {
  std::vector<int> r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) r[i] = i;
  return r;
}

TEST(KvCache, StartsEmptyWithShapeAndHoldsNoPages) {
  KvCache cache({2, 3, 4, 10});
  EXPECT_EQ(cache.n_tokens(), 0);
  EXPECT_EQ(cache.capacity(), 10);
  EXPECT_EQ(cache.length(1, 2), 0);
  EXPECT_EQ(cache.pages_held(), 0);
  EXPECT_EQ(cache.pool().pages_in_use(), 0);
}

TEST(KvCache, AppendKeepsEntriesAndPositionsAcrossPages) {
  KvCache cache({2, 3, 4, 40});  // 16 entries a page: 37 entries span 3 pages per (layer, head)
  append_tokens(cache, 0, 37);
  expect_contents(cache, range(37));
  EXPECT_EQ(cache.pages_held(), 2 * 3 * 3);
  EXPECT_EQ(cache.pool().pages_in_use(), 2 * 3 * 3);
}

TEST(KvCache, MemoryGrowsWithTokensHeldNotCapacity) {
  KvCache small({2, 2, 8, 4096});
  append_tokens(small, 0, 16);
  KvCache large({2, 2, 8, 4096});
  append_tokens(large, 0, 64);
  EXPECT_EQ(small.bytes_held() * 4, large.bytes_held());
  KvCache half({2, 2, 8, 4096}, KvType::kF16, KvType::kF16);
  append_tokens(half, 0, 64);
  // Positions are 4 bytes per entry either way: F16 pages hold (2 * 16 + 4) bytes an entry
  // against F32's (2 * 32 + 4).
  EXPECT_EQ(half.pool().page_bytes() * 68, large.pool().page_bytes() * 36);
}

TEST(KvCache, TruncateRollsBackAndReleasesPages) {
  KvCache cache({2, 2, 3, 64});
  append_tokens(cache, 0, 40);
  cache.truncate(17);
  EXPECT_EQ(cache.n_tokens(), 17);
  expect_contents(cache, range(17));
  EXPECT_EQ(cache.pool().pages_in_use(), 2 * 2 * 2);
  append_tokens(cache, 17, 3);
  expect_contents(cache, range(20));
}

// Entries need not ascend by position (a token tree appends siblings at one position, then their
// children): truncation keeps exactly the entries below the cut, in order, whether the dropped
// ones form a tail (the last two orders) or not (the first), and frees the pages left empty (16
// entries a page here).
TEST(KvCache, TruncateKeepsEntriesBelowTheCutInAnyOrder) {
  for (const std::vector<int>& order :
       {std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 20, 15, 16, 17, 18},
        std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19, 17, 18},
        std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 17, 18}}) {
    KvCache cache({1, 2, 3, 64});
    ASSERT_TRUE(cache.reserve(static_cast<int>(order.size())).has_value());
    for (int p : order) {
      for (int h = 0; h < 2; ++h) {
        cache.append(0, h, p, entry(0, h, p, 3, 1).data(), entry(0, h, p, 3, -1).data());
      }
    }
    cache.set_n_tokens(21);
    cache.truncate(16);
    std::vector<int> kept;
    for (int p : order) {
      if (p < 16) kept.push_back(p);
    }
    expect_contents(cache, kept);
    EXPECT_EQ(cache.pool().pages_in_use(), 2 * 1);  // 16 entries: the second page of each head goes
  }
}

TEST(KvCache, EraseEvictsPerLayerAndHead) {
  KvCache cache({1, 2, 2, 64});
  append_tokens(cache, 0, 20);
  const std::vector<int> evict = {0, 3, 4, 17};
  cache.erase(0, 1, evict);
  EXPECT_EQ(cache.length(0, 0), 20);
  EXPECT_EQ(cache.length(0, 1), 16);
  const Gathered g = gather(cache, 0, 1);
  std::vector<int32_t> expected;
  for (int p = 0; p < 20; ++p) {
    if (p != 0 && p != 3 && p != 4 && p != 17) expected.push_back(p);
  }
  EXPECT_EQ(g.positions, expected);
  EXPECT_EQ(g.keys[0], entry(0, 1, 1, 2, 1)[0]);
  EXPECT_EQ(cache.n_tokens(), 20);  // evictions do not move the next position
}

TEST(KvCache, ForkSharesPagesAndCopiesOnWrite) {
  KvCache parent({1, 1, 4, 64});
  append_tokens(parent, 0, 20);  // pages: 16 full + 4 in a partial page
  const int64_t before = parent.pool().pages_in_use();
  KvCache child = parent.fork();
  EXPECT_EQ(parent.pool().pages_in_use(), before);  // nothing copied yet
  append_tokens(child, 20, 2, 2);                   // writes the shared partial page: copied
  EXPECT_EQ(parent.pool().pages_in_use(), before + 1);
  expect_contents(parent, range(20));
  EXPECT_EQ(child.length(0, 0), 22);
  EXPECT_EQ(child.pages(0, 0)[0], parent.pages(0, 0)[0]);  // the full page is still shared
  EXPECT_NE(child.pages(0, 0)[1], parent.pages(0, 0)[1]);
  child.erase(0, 0, std::vector<int>{0});  // rewrites the shared first page: copied
  expect_contents(parent, range(20));
  EXPECT_EQ(gather(child, 0, 0).positions.front(), 1);
}

TEST(KvCache, ReserveFailsCleanlyWhenThePoolIsFull) {
  KvPoolOptions o{1, 2, 4, KvType::kF32, KvType::kF32, 4, 3};
  auto pool = std::make_shared<KvPool>(o);
  KvCache cache(pool, 100);
  ASSERT_TRUE(cache.reserve(4).has_value());  // 2 pages
  auto st = cache.reserve(8);                 // 2 more pages per head: 4 > 1 free
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(st.error().message.find("pages"), std::string::npos) << st.error().message;
  EXPECT_EQ(pool->pages_in_use(), 2);
  auto over = cache.reserve(101);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ErrorCode::kContextOverflow);
}

TEST(KvCache, QuantizedStorageRoundTripsWithinItsPrecision) {
  for (KvType t : {KvType::kF16, KvType::kQ8_0, KvType::kQ4_0}) {
    KvCache cache({1, 1, 32, 8}, t, t);
    std::vector<float> k(32), v(32);
    for (int d = 0; d < 32; ++d) k[d] = std::sin(d * 0.7f), v[d] = std::cos(d * 0.3f);
    ASSERT_TRUE(cache.reserve(1).has_value());
    cache.append(0, 0, 5, k.data(), v.data());
    std::vector<float> gk(32), gv(32);
    int32_t pos = 0;
    cache.gather(0, 0, gk.data(), gv.data(), &pos);
    EXPECT_EQ(pos, 5);
    const float tol = t == KvType::kF16 ? 1e-3f : t == KvType::kQ8_0 ? 1e-2f : 0.15f;
    for (int d = 0; d < 32; ++d) {
      EXPECT_NEAR(gk[d], k[d], tol) << kv_type_name(t);
      EXPECT_NEAR(gv[d], v[d], tol) << kv_type_name(t);
    }
  }
}

TEST(KvType, NamesParseAndBadOnesListTheValidOnes) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kQ8_0, KvType::kQ4_0}) {
    auto parsed = parse_kv_type(kv_type_name(t));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, t);
  }
  auto bad = parse_kv_type("q5_1");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("f32, f16, q8_0, q4_0"), std::string::npos);
  EXPECT_FALSE(check_kv_type(KvType::kQ4_0, 8).has_value());
  EXPECT_TRUE(check_kv_type(KvType::kQ4_0, 64).has_value());
}

// Thousands of random appends, forks, truncations, evictions and releases over several caches
// sharing one pool, checked after every operation against plain vectors: every cache's contents,
// and the pool's accounting (each page's reference count is the number of page-table slots that
// hold it; pages in use are exactly the pages some cache holds; none left at the end).
TEST(KvCache, RandomOperationsKeepContentsAndPageAccounting) {
  constexpr int kLayers = 2, kHeads = 2, kDim = 3;
  auto pool = std::make_shared<KvPool>(
      KvPoolOptions{kLayers, kHeads, kDim, KvType::kF32, KvType::kF32, 4, 0});
  struct Ref {  // per (layer, head): (position, tag) of each entry in order
    std::vector<std::vector<std::pair<int, float>>> slots =
        std::vector<std::vector<std::pair<int, float>>>(kLayers * kHeads);
    int n_tokens = 0;
  };
  std::vector<std::optional<KvCache>> caches(6);
  std::vector<Ref> refs(6);
  std::mt19937 rng(20261204);
  const auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  const auto check = [&]() {
    std::map<KvPool::PageId, int> held;
    for (size_t c = 0; c < caches.size(); ++c) {
      if (!caches[c]) continue;
      ASSERT_EQ(caches[c]->n_tokens(), refs[c].n_tokens);
      for (int l = 0; l < kLayers; ++l) {
        for (int h = 0; h < kHeads; ++h) {
          for (KvPool::PageId p : caches[c]->pages(l, h)) ++held[p];
          const auto& want = refs[c].slots[static_cast<size_t>(l * kHeads + h)];
          const Gathered g = gather(*caches[c], l, h);
          ASSERT_EQ(g.positions.size(), want.size());
          for (size_t j = 0; j < want.size(); ++j) {
            ASSERT_EQ(g.positions[j], want[j].first);
            ASSERT_EQ(g.keys[j * kDim + 1], entry(l, h, want[j].first, kDim, want[j].second)[1]);
            ASSERT_EQ(g.values[j * kDim + 2], entry(l, h, want[j].first, kDim, -want[j].second)[2]);
          }
        }
      }
    }
    ASSERT_EQ(pool->pages_in_use(), static_cast<int64_t>(held.size()));
    for (const auto& [page, count] : held) ASSERT_EQ(pool->refs(page), count);
  };
  for (int op = 0; op < 4000; ++op) {
    const int c = pick(6);
    const int kind = pick(10);
    if (!caches[c]) {
      caches[c].emplace(pool, 64);
      refs[c] = Ref{};
    } else if (kind <= 3) {  // append 1-6 tokens with a fresh tag
      const int n = 1 + pick(6);
      if (refs[c].n_tokens + n > 48) continue;
      const float tag = static_cast<float>(1 + pick(100));
      ASSERT_TRUE(caches[c]->reserve(n).has_value());
      for (int t = 0; t < n; ++t) {
        const int p = refs[c].n_tokens + t;
        for (int l = 0; l < kLayers; ++l) {
          for (int h = 0; h < kHeads; ++h) {
            caches[c]->append(l, h, p, entry(l, h, p, kDim, tag).data(),
                              entry(l, h, p, kDim, -tag).data());
            refs[c].slots[static_cast<size_t>(l * kHeads + h)].push_back({p, tag});
          }
        }
      }
      refs[c].n_tokens += n;
      caches[c]->set_n_tokens(refs[c].n_tokens);
    } else if (kind == 4) {  // fork into another slot
      const int d = pick(6);
      if (d == c) continue;
      caches[d].reset();
      caches[d].emplace(caches[c]->fork());
      refs[d] = refs[c];
    } else if (kind == 5) {  // truncate
      const int n = pick(refs[c].n_tokens + 1);
      caches[c]->truncate(n);
      for (auto& slot : refs[c].slots) std::erase_if(slot, [&](auto& e) { return e.first >= n; });
      refs[c].n_tokens = std::min(refs[c].n_tokens, n);
    } else if (kind == 6) {  // evict random entries of one (layer, head)
      const int l = pick(kLayers), h = pick(kHeads);
      auto& slot = refs[c].slots[static_cast<size_t>(l * kHeads + h)];
      std::vector<int> idx;
      for (int j = 0; j < static_cast<int>(slot.size()); ++j) {
        if (pick(4) == 0) idx.push_back(j);
      }
      caches[c]->erase(l, h, idx);
      for (auto it = idx.rbegin(); it != idx.rend(); ++it) slot.erase(slot.begin() + *it);
    } else if (kind == 7) {
      caches[c].reset();
    } else if (kind == 8) {
      caches[c]->clear();
      refs[c] = Ref{};
    }
    ASSERT_NO_FATAL_FAILURE(check()) << "after operation " << op;
  }
  for (auto& c : caches) c.reset();
  EXPECT_EQ(pool->pages_in_use(), 0);
}

}  // namespace
}  // namespace pareto::kv
