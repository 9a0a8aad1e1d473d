// The prefix cache: blocks shared by reference (no copy until a sequence writes to a partly
// reused one), longest-prefix matching to the token, pinning while in use, least-recently-used
// eviction of leaves under the pool's limit and its own, and blocks broken by eviction or erasure
// never shared.
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

// A finished sequence of `t`: filled, then handed to the prefix cache (its pages go back after).
void insert_sequence(const std::shared_ptr<KvPool>& pool, PrefixCache& prefix,
                     const std::vector<int32_t>& t) {
  KvCache a(pool, 256);
  fill(a, t);
  prefix.insert(t, a);
}

std::vector<int32_t> tokens(int n, int salt = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[i] = (i * 31 + salt) % 97;
  return t;
}

TEST(PrefixCache, ASecondSequenceSharesTheBlocksOfTheFirst) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> first = tokens(40);
  {
    KvCache a(pool, 256);
    fill(a, first);
    EXPECT_EQ(a.full_blocks(), 2);
    EXPECT_EQ(a.tail_entries(), 8);
    prefix.insert(first, a);
  }
  EXPECT_EQ(prefix.blocks(), 3);                // two whole blocks and the 8-token tail
  EXPECT_EQ(pool->pages_in_use(), 3 * kSlots);  // only the cached blocks' pages stay
  EXPECT_EQ(prefix.evictable_pages(), 3 * kSlots);

  std::vector<int32_t> second = first;
  second.resize(37);
  second.push_back(5);
  KvCache b(pool, 256);
  PrefixCache::Lease lease;
  // Whole blocks 0 and 1, then 5 of the tail's 8 tokens (the 6th differs).
  EXPECT_EQ(prefix.attach(second, static_cast<int>(second.size()) - 1, b, lease), 37);
  EXPECT_EQ(b.n_tokens(), 37);
  EXPECT_EQ(pool->pages_in_use(), 3 * kSlots);  // shared, not copied
  EXPECT_EQ(prefix.evictable_pages(), 0);       // pinned while b runs
  fill(b, second);
  EXPECT_EQ(pool->pages_in_use(), 4 * kSlots);  // the tail's page copied on b's first write
  KvCache cold(pool, 256);
  fill(cold, second);
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kHeads; ++h) EXPECT_EQ(keys(b, l, h), keys(cold, l, h));
  }
  prefix.release(lease);
  EXPECT_EQ(prefix.evictable_pages(), 3 * kSlots);
  EXPECT_EQ(prefix.hits(), 37);
}

TEST(PrefixCache, MatchesOnlyUpToTheFirstDifferentTokenAndTheLimit) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> t = tokens(64);
  insert_sequence(pool, prefix, t);
  std::vector<int32_t> other = t;
  other[20] = 96;  // block 1 differs from its 5th token on
  KvCache b(pool, 256);
  PrefixCache::Lease lease;
  EXPECT_EQ(prefix.attach(other, 63, b, lease), 20);
  prefix.release(lease);
  KvCache c(pool, 256);
  EXPECT_EQ(prefix.attach(t, 47, c, lease), 47);  // a whole prompt still evaluates its last token
  prefix.release(lease);
  KvCache d(pool, 256);
  EXPECT_EQ(prefix.attach(tokens(64, 5), 63, d, lease), 0);
  prefix.release(lease);
}

// A sequence that continues a shared block part-way writes its own copy: the cached block, and
// every later sequence that reads it, see the entries of the sequence that inserted it.
TEST(PrefixCache, APartlyReusedBlockIsCopiedOnWriteAndStaysIntact) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> t = tokens(48);
  insert_sequence(pool, prefix, t);
  std::vector<int32_t> fork = t;
  for (int i = 24; i < 48; ++i) fork[i] = (fork[i] + 1) % 97;  // diverges inside block 1
  PrefixCache::Lease lease;
  {
    KvCache b(pool, 256);
    EXPECT_EQ(prefix.attach(fork, 47, b, lease), 24);
    fill(b, fork);
    KvCache cold(pool, 256);
    fill(cold, fork);
    for (int l = 0; l < kLayers; ++l) {
      for (int h = 0; h < kHeads; ++h) EXPECT_EQ(keys(b, l, h), keys(cold, l, h));
    }
    prefix.release(lease);
  }
  KvCache c(pool, 256);
  EXPECT_EQ(prefix.attach(t, 48, c, lease), 48);
  KvCache cold(pool, 256);
  fill(cold, t);
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kHeads; ++h) EXPECT_EQ(keys(c, l, h), keys(cold, l, h));
  }
  prefix.release(lease);
}

// A finished sequence's incomplete last block is kept as a partial leaf; a longer one replaces
// it, a shorter one adds nothing.
TEST(PrefixCache, PartialTailsAreKeptUntilALongerBlockCoversThem) {
  auto pool = make_pool();
  PrefixCache prefix(pool, 0);
  const std::vector<int32_t> t = tokens(64);
  const auto insert_first = [&](int n) {
    insert_sequence(pool, prefix, std::vector<int32_t>(t.begin(), t.begin() + n));
  };
  insert_first(20);  // block 0 + a 4-token tail
  EXPECT_EQ(prefix.blocks(), 2);
  insert_first(26);  // a 10-token tail covers the 4-token one
  EXPECT_EQ(prefix.blocks(), 2);
  EXPECT_EQ(pool->pages_in_use(), 2 * kSlots);
  insert_first(18);  // a 2-token tail: covered already
  EXPECT_EQ(prefix.blocks(), 2);
  KvCache b(pool, 256);
  PrefixCache::Lease lease;
  EXPECT_EQ(prefix.attach(t, 63, b, lease), 26);
  prefix.release(lease);
  b.clear();
  insert_first(40);  // block 1 whole now: the tail goes, block 2's 8-token tail comes
  EXPECT_EQ(prefix.blocks(), 3);
  EXPECT_EQ(pool->pages_in_use(), 3 * kSlots);
  KvCache c(pool, 256);
  EXPECT_EQ(prefix.attach(t, 63, c, lease), 40);
  prefix.release(lease);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedLeavesWhenThePoolIsShort) {
  auto pool = make_pool(/*max_pages=*/6 * kSlots);
  PrefixCache prefix(pool, 0);
  for (int salt : {1, 2, 3}) {  // three 2-block chains fill the pool
    insert_sequence(pool, prefix, tokens(32, salt));
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
    insert_sequence(pool, prefix, tokens(32, salt));
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
