// The prefix cache: whole blocks shared by reference (no copy), longest-prefix matching, pinning
// while in use, least-recently-used eviction of leaves under the pool's limit and its own, and
// blocks broken by eviction or erasure never shared.
#include "kv/prefix_cache.h"

#include <numeric>
#include <vector>

#include <gtest/gtest.h>

namespace pareto::kv {
namespace {

constexpr int kLayers = 2, kHeads = 2, kDim = 4, kSlots = kLayers * kHeads;

std::shared_ptr<KvPool> make_pool(int64_t max_pages = 0) {
  KvPoolOptions o;
  o.n_layers = kLayers;
  o.n_kv_heads = kHeads;
  o.head_dim = kDim;
  o.max_pages = max_pages;
  return std::make_shared<KvPool>(o);
}

// Key/value of (layer, head, position) derived from the token there, so equal tokens at equal
// positions give equal entries, as a model's would.
void fill(KvCache& cache, const std::vector<int32_t>& tokens) {
  const int first = cache.n_tokens();
  const int n = static_cast<int>(tokens.size()) - first;
  ASSERT_TRUE(cache.reserve(n));
  for (int p = first; p < first + n; ++p) {
    for (int l = 0; l < kLayers; ++l) {
      for (int h = 0; h < kHeads; ++h) {
        std::vector<float> k(kDim), v(kDim);
        for (int d = 0; d < kDim; ++d) {
          k[d] = static_cast<float>(tokens[p] * 7 + p * 3 + l * 100 + h * 10 + d);
          v[d] = -k[d];
        }
        cache.append(l, h, p, k.data(), v.data());
      }
    }
  }
  cache.set_n_tokens(first + n);
}

std::vector<float> keys(const KvCache& cache, int l, int h) {
  const int n = cache.length(l, h);
  std::vector<float> k(static_cast<size_t>(n) * kDim), v(k.size());
  std::vector<int32_t> pos(static_cast<size_t>(n));
  cache.gather(l, h, k.data(), v.data(), pos.data());
  return k;
}

std::vector<int32_t> tokens(int n, int salt = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[i] = (i * 31 + salt) % 97;
  return t;
}

TEST(PrefixCache, ASecondSequenceSharesTheWholeBlocksOfTheFirst) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> first = tokens(40);
  {
    KvCache a(pool, 256);
    fill(a, first);
    EXPECT_EQ(a.full_blocks(), 2);
    prefix.insert(first, a);
  }
  EXPECT_EQ(prefix.blocks(), 2);
  EXPECT_EQ(pool->pages_in_use(), 2 * kSlots);  // only the cached blocks' pages stay
  EXPECT_EQ(prefix.evictable_pages(), 2 * kSlots);

  std::vector<int32_t> second = first;
  second.resize(37);
  second.push_back(5);
  KvCache b(pool, 256);
  PrefixCache::Lease lease;
  EXPECT_EQ(prefix.attach(second, static_cast<int>(second.size()) - 1, b, lease), 32);
  EXPECT_EQ(b.n_tokens(), 32);
  EXPECT_EQ(pool->pages_in_use(), 2 * kSlots);  // shared, not copied
  EXPECT_EQ(prefix.evictable_pages(), 0);       // pinned while b runs
  fill(b, second);
  KvCache cold(pool, 256);
  fill(cold, second);
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kHeads; ++h) EXPECT_EQ(keys(b, l, h), keys(cold, l, h));
  }
  prefix.release(lease);
  EXPECT_EQ(prefix.evictable_pages(), 2 * kSlots);
  EXPECT_EQ(prefix.hits(), 32);
}

TEST(PrefixCache, MatchesOnlyUpToTheFirstDifferentBlockAndTheLimit) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> t = tokens(64);
  KvCache a(pool, 256);
  fill(a, t);
  prefix.insert(t, a);
  std::vector<int32_t> other = t;
  other[20] = 96;  // block 1 differs
  KvCache b(pool, 256);
  PrefixCache::Lease lease;
  EXPECT_EQ(prefix.attach(other, 63, b, lease), 16);
  prefix.release(lease);
  KvCache c(pool, 256);
  EXPECT_EQ(prefix.attach(t, 47, c, lease), 32);  // a whole prompt still evaluates its last token
  prefix.release(lease);
  KvCache d(pool, 256);
  EXPECT_EQ(prefix.attach(tokens(64, 5), 63, d, lease), 0);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedLeavesWhenThePoolIsShort) {
  auto pool = make_pool(/*max_pages=*/6 * kSlots);
  PrefixCache prefix(pool, 0);
  for (int salt : {1, 2, 3}) {  // three 2-block chains fill the pool
    const std::vector<int32_t> t = tokens(32, salt);
    KvCache a(pool, 256);
    fill(a, t);
    prefix.insert(t, a);
  }
  EXPECT_EQ(pool->pages_in_use(), 6 * kSlots);
  KvCache touch(pool, 256);
  PrefixCache::Lease lease;
  EXPECT_EQ(prefix.attach(tokens(33, 1), 32, touch, lease), 32);  // chain 1 is now recent
  prefix.release(lease);
  touch.clear();
  EXPECT_TRUE(prefix.make_room(2 * kSlots));
  EXPECT_EQ(prefix.blocks(), 4);
  // Chain 2 (least recent) went first, leaf before its parent.
  KvCache probe2(pool, 256);
  EXPECT_EQ(prefix.attach(tokens(33, 2), 32, probe2, lease), 0);
  prefix.release(lease);
  KvCache probe1(pool, 256);
  EXPECT_EQ(prefix.attach(tokens(33, 1), 32, probe1, lease), 32);
  // Pinned blocks are never evicted: chain 1 stays even when more room is asked for.
  EXPECT_FALSE(prefix.make_room(6 * kSlots));
  EXPECT_EQ(prefix.blocks(), 2);
  prefix.release(lease);
}

TEST(PrefixCache, KeepsToItsOwnLimit) {
  auto pool = make_pool();
  PrefixCache prefix(pool, /*max_pages=*/3 * kSlots);
  for (int salt : {1, 2}) {
    const std::vector<int32_t> t = tokens(32, salt);
    KvCache a(pool, 256);
    fill(a, t);
    prefix.insert(t, a);
  }
  EXPECT_LE(prefix.pages_held(), 3 * kSlots);
  EXPECT_EQ(pool->pages_in_use(), prefix.pages_held());
}

TEST(PrefixCache, BlocksBrokenByErasureAreNotShared) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> t = tokens(48);
  KvCache a(pool, 256);
  fill(a, t);
  const int drop[] = {20};
  a.erase(1, 0, drop);  // block 1 of one slot loses an entry
  EXPECT_EQ(a.full_blocks(), 1);
  prefix.insert(t, a);
  EXPECT_EQ(prefix.blocks(), 1);
}

}  // namespace
}  // namespace pareto::kv
