// KV budgets (kv/kv_policy.h): budget parsing and its errors, the registry, each policy's choice
// on a cache of known entries and scores, per-entry state compacted with the cache.
#include "kv/kv_policy.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pareto::kv {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(KvBudget, ParsesPercentagesFractionsAndEntryCounts) {
  auto p = parse_kv_budget("20%");
  ASSERT_TRUE(p.has_value());
  EXPECT_DOUBLE_EQ(p->fraction, 0.2);
  EXPECT_EQ(p->keep(100), 20);
  EXPECT_EQ(p->keep(101), 21);  // rounded up
  EXPECT_EQ(p->keep(1), 1);
  auto f = parse_kv_budget("0.5");
  ASSERT_TRUE(f.has_value());
  EXPECT_DOUBLE_EQ(f->fraction, 0.5);
  EXPECT_FALSE(f->is_full());
  auto e = parse_kv_budget("512");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->entries, 512);
  EXPECT_EQ(e->keep(10000), 512);
  EXPECT_TRUE(parse_kv_budget("100%")->is_full());
  EXPECT_TRUE(parse_kv_budget("1")->is_full());  // a fraction of 1, not one entry
}

TEST(KvBudget, PerLayerBudgetsParseAndMustNumberTheLayers) {
  auto b = parse_kv_budget("40%,0.3,512,100%");
  ASSERT_TRUE(b.has_value()) << b.error().message;
  ASSERT_EQ(b->layers.size(), 4u);
  EXPECT_EQ(b->keep(0, 1000), 400);
  EXPECT_EQ(b->keep(1, 1000), 300);
  EXPECT_EQ(b->keep(2, 1000), 512);
  EXPECT_EQ(b->keep(3, 1000), 1000);
  EXPECT_FALSE(b->is_full());
  EXPECT_TRUE(parse_kv_budget("100%,1")->is_full());
  EXPECT_TRUE(b->check_layers(4).has_value());
  const Status wrong = b->check_layers(6);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_THAT(wrong.error().message, HasSubstr("4 per-layer budgets, the model has 6 layers"));
  // A bad part names the whole text and the layer.
  for (const char* bad : {"20%,", ",20%", "20%,,10%", "20%,0,10%", "20%,abc"}) {
    auto r = parse_kv_budget(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_THAT(r.error().message, HasSubstr(std::string("'") + bad + "': layer ")) << bad;
  }
}

TEST(KvBudget, BadBudgetsAreErrorsNamingTheText) {
  for (const char* bad :
       {"", "0", "0%", "-5", "-20%", "101%", "1.5", "abc", "20%%", "3.7e99", "nan", "inf", "12x"}) {
    auto r = parse_kv_budget(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_THAT(r.error().message, HasSubstr(std::string("'") + bad + "'"));
  }
}

TEST(KvPolicyRegistry, KnowsEveryPolicyAndRejectsOthers) {
  const KvShape shape{2, 2, 4, 64};
  for (const std::string& name : kv_policy_names()) {
    auto p = make_kv_policy(name, shape);
    ASSERT_TRUE(p.has_value()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
  auto bad = make_kv_policy("h3o", shape);
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message, HasSubstr("unknown policy 'h3o'"));
  EXPECT_THAT(bad.error().message, HasSubstr("snapkv"));
}

// A cache whose (layer, head) entries sit at positions 0..n-1 (keys and values: the position), in
// its own pool or in `pool` (of the same shape).
KvCache filled_cache(const KvShape& shape, int n, std::shared_ptr<KvPool> pool = nullptr) {
  KvCache cache = pool ? KvCache(std::move(pool), shape.capacity) : KvCache(shape);
  EXPECT_TRUE(cache.reserve(n).has_value());
  std::vector<float> v(static_cast<size_t>(shape.head_dim));
  for (int t = 0; t < n; ++t) {
    std::fill(v.begin(), v.end(), static_cast<float>(t));
    for (int l = 0; l < shape.n_layers; ++l) {
      for (int h = 0; h < shape.n_kv_heads; ++h) cache.append(l, h, t, v.data(), v.data());
    }
  }
  cache.set_n_tokens(n);
  return cache;
}

std::vector<int32_t> positions(const KvCache& cache, int layer, int head) {
  std::vector<int32_t> out;
  for (int e = 0; e < cache.length(layer, head); ++e) out.push_back(cache.position(layer, head, e));
  return out;
}

TEST(KvPolicies, WindowKeepsSinksAndTheRecentEntries) {
  const KvShape shape{1, 1, 4, 64};
  KvCache cache = filled_cache(shape, 20);
  auto p = make_kv_policy("window", shape);
  ASSERT_TRUE(p.has_value());
  KvBudget b;
  b.entries = 10;
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 10);
  EXPECT_THAT(positions(cache, 0, 0), ElementsAre(0, 1, 2, 3, 14, 15, 16, 17, 18, 19));
  // Nothing more while within the budget.
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 0);
}

// Attention rows that favour `heavy` entries (weight 1 each, spread over one query row each).
void observe_heavy(KvPolicy& p, int length, std::vector<int> heavy, int layer = 0, int head = 0) {
  std::vector<float> w(static_cast<size_t>(heavy.size() * static_cast<size_t>(length)), 0.0f);
  for (size_t q = 0; q < heavy.size(); ++q) {
    w[q * static_cast<size_t>(length) + static_cast<size_t>(heavy[q])] = 1.0f;
  }
  p.observe(layer, head, w, static_cast<int>(heavy.size()), 1, length);
}

TEST(KvPolicies, H2OKeepsHeavyHittersAndTheRecentHalf) {
  const KvShape shape{1, 1, 4, 64};
  KvCache cache = filled_cache(shape, 20);
  auto p = make_kv_policy("h2o", shape);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE((*p)->needs_attention());
  observe_heavy(**p, 20, {7, 7, 7, 11, 11, 2});
  KvBudget b;
  b.entries = 6;  // 3 recent + 3 heavy
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 14);
  EXPECT_THAT(positions(cache, 0, 0), ElementsAre(2, 7, 11, 17, 18, 19));
  // The scores moved with their entries: position 7 is still the heaviest.
  observe_heavy(**p, 6, {3});  // index 3 = position 17
  b.entries = 4;               // 2 recent + 2 heavy: 7 (3.0) and 11 (2.0) over 17 (1.0), 2 (1.0)
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 2);
  EXPECT_THAT(positions(cache, 0, 0), ElementsAre(7, 11, 18, 19));
}

TEST(KvPolicies, SnapKvKeepsItsObservationWindowAndPooledImportantEntries) {
  const KvShape shape{1, 1, 4, 256};
  KvCache cache = filled_cache(shape, 100);
  auto p = make_kv_policy("snapkv", shape);
  ASSERT_TRUE(p.has_value());
  // 32 queries all attending to entry 40: pooling spreads its weight to 38..42.
  observe_heavy(**p, 100, std::vector<int>(32, 40));
  KvBudget b;
  b.entries = 37;  // the 32 most recent entries (68..99) + the 5 around 40
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 63);
  std::vector<int32_t> want = {38, 39, 40, 41, 42};
  for (int i = 68; i < 100; ++i) want.push_back(i);
  EXPECT_EQ(positions(cache, 0, 0), want);
}

// Ada-KV: head 0's 32 window queries all look at entry 10, head 1's spread evenly over 0..67. With
// 52 entries per head on average, each keeps its 32 newest and a floor of 4 (a fifth of the other
// 20); of the 32 left, head 0's pooled neighbourhood of 10 (8..12, weight 6.4 each) takes 1 and
// head 1 (0.47 each) the other 31: 37 and 67 entries, where snapkv keeps 52 and 52.
TEST(KvPolicies, AdaKvGivesTheLayersBudgetToTheHeadThatSpreadsItsAttention) {
  const KvShape shape{1, 2, 4, 128};
  KvCache cache = filled_cache(shape, 100);
  auto p = make_kv_policy("adakv", shape);
  ASSERT_TRUE(p.has_value());
  observe_heavy(**p, 100, std::vector<int>(32, 10), 0, 0);
  std::vector<float> w(32 * 100, 0.0f);
  for (int q = 0; q < 32; ++q) {
    for (int e = 0; e < 68; ++e) w[static_cast<size_t>(q * 100 + e)] = 1.0f / 68;
  }
  (*p)->observe(0, 1, w, 32, 1, 100);
  KvBudget b;
  b.entries = 52;
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 200 - 104);
  EXPECT_EQ(cache.length(0, 0), 37);
  EXPECT_EQ(cache.length(0, 1), 67);
  std::vector<int32_t> want = {8, 9, 10, 11, 12};
  for (int i = 68; i < 100; ++i) want.push_back(i);
  EXPECT_EQ(positions(cache, 0, 0), want);
  // A head that holds less than its share leaves the rest to the others: with 40 each on average,
  // head 0 (10 entries) keeps its 10, head 1 (100) the other 70.
  KvCache uneven = filled_cache(shape, 100);
  std::vector<int> first90(90);
  for (int i = 0; i < 90; ++i) first90[static_cast<size_t>(i)] = i;
  uneven.erase(0, 0, first90);
  auto q = make_kv_policy("adakv", shape);
  ASSERT_TRUE(q.has_value());
  (*q)->observe(0, 1, w, 32, 1, 100);
  b.entries = 40;
  enforce_kv_budget(uneven, **q, b);
  EXPECT_EQ(uneven.length(0, 0), 10);
  EXPECT_EQ(uneven.length(0, 1), 70);
  // Within the budget as a whole, a layer does not evict, however its heads are split.
  KvCache within = filled_cache(shape, 100);
  within.erase(0, 0, first90);
  b.entries = 55;
  EXPECT_EQ(enforce_kv_budget(within, **q, b), 0);
}

// DefensiveKV's worst-case aggregation against SnapKV's sum: entry 5 draws 0.9 of one query's
// attention, entry 10 0.05 of each of the 32 window queries (1.6 in all). SnapKV keeps the
// neighbourhood of 10, DefensiveKV that of 5 (values all equal, so their norms weigh alike).
TEST(KvPolicies, DefensiveKeepsWhatOneQueryNeededMostWhereSnapKvKeepsTheSum) {
  const KvShape shape{1, 1, 4, 128};
  const auto run = [&](const std::string& name) {
    KvCache cache(shape);
    EXPECT_TRUE(cache.reserve(100).has_value());
    const std::vector<float> ones(4, 1.0f);
    for (int t = 0; t < 100; ++t) cache.append(0, 0, t, ones.data(), ones.data());
    cache.set_n_tokens(100);
    auto p = make_kv_policy(name, shape);
    EXPECT_TRUE(p.has_value());
    std::vector<float> w(32 * 100, 0.0f);
    w[5] = 0.9f;
    for (int q = 0; q < 32; ++q) w[static_cast<size_t>(q * 100 + 10)] = 0.05f;
    (*p)->observe(0, 0, w, 32, 1, 100);
    KvBudget b;
    b.entries = 37;  // 32 recent + 5
    enforce_kv_budget(cache, **p, b);
    auto pos = positions(cache, 0, 0);
    pos.resize(5);
    return pos;
  };
  EXPECT_THAT(run("snapkv"), ElementsAre(8, 9, 10, 11, 12));
  EXPECT_THAT(run("defensive"), ElementsAre(3, 4, 5, 6, 7));
}

TEST(KvPolicies, EveryPolicyKeepsExactlyTheBudgetPerLayerAndHead) {
  const KvShape shape{3, 2, 4, 128};
  for (const std::string& name : kv_policy_names()) {
    KvCache cache = filled_cache(shape, 90);
    auto p = make_kv_policy(name, shape);
    ASSERT_TRUE(p.has_value());
    for (int l = 0; l < 3; ++l) {
      for (int h = 0; h < 2; ++h) observe_heavy(**p, 90, {l * 10 + h, 50, 89}, l, h);
    }
    KvBudget b;
    b.fraction = 0.3;  // 27 of 90
    KvCache parked = cache.empty_like();
    enforce_kv_budget(cache, **p, b, &parked);
    for (int l = 0; l < 3; ++l) {
      // adakv moves budget between a layer's heads: the layer's total is the budget.
      if (name == "adakv") {
        EXPECT_EQ(cache.length(l, 0) + cache.length(l, 1), 2 * 27);
      }
      for (int h = 0; h < 2; ++h) {
        const auto pos = positions(cache, l, h);
        if (name != "adakv") {
          EXPECT_EQ(static_cast<int>(pos.size()), name == "full" ? 90 : (*p)->layer_keep(l, 27, 90))
              << name;
        }
        EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end())) << name;  // order kept
        EXPECT_EQ(pos.back(), 89) << name;  // the newest entry always stays
      }
    }
  }
}

TEST(KvPolicies, PerLayerBudgetsKeepEachLayersOwnCountAndReplaceThePolicysAllocation) {
  const KvShape shape{3, 2, 4, 128};
  for (const std::string name : {"window", "h2o", "snapkv", "pyramid", "defensive"}) {
    KvCache cache = filled_cache(shape, 90);
    auto p = make_kv_policy(name, shape);
    ASSERT_TRUE(p.has_value());
    for (int l = 0; l < 3; ++l) {
      for (int h = 0; h < 2; ++h) observe_heavy(**p, 90, {l * 10 + h, 50, 89}, l, h);
    }
    // Layer 0 keeps 50% (45 of 90), layer 1 everything, layer 2 ten entries.
    KvCache parked = cache.empty_like();
    enforce_kv_budget(cache, **p, *parse_kv_budget("50%,100%,10"), &parked);
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(cache.length(0, h), 45) << name;
      EXPECT_EQ(cache.length(1, h), 90) << name;
      EXPECT_EQ(cache.length(2, h), 10) << name;
      for (int l : {0, 2}) {
        const auto pos = positions(cache, l, h);
        EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end())) << name;
        EXPECT_EQ(pos.back(), 89) << name;
      }
    }
  }
}

TEST(KvPolicies, RefreshAttendsToASmallCopyAndReselectsAfterEachFullForward) {
  const KvShape shape{1, 2, 4, 256};
  KvCache cache = filled_cache(shape, 40);
  KvCache parked = cache.empty_like();
  auto p = make_kv_policy("refresh", shape);
  ASSERT_TRUE(p.has_value());
  KvBudget b;
  b.entries = 12;
  std::vector<int32_t> all(40);
  std::iota(all.begin(), all.end(), 0);
  // The prompt's forward attends to everything and selects: the 8 newest, then entries 3, 7, 20
  // and 30 by attention. The small cache is a copy; the whole one is parked, nothing lost.
  before_kv_forward(cache, **p, parked, /*prompt=*/true);
  ASSERT_TRUE((*p)->needs_attention());
  for (int h = 0; h < 2; ++h) observe_heavy(**p, 40, {3, 7, 20, 30}, 0, h);
  EXPECT_EQ(enforce_kv_budget(cache, **p, b, &parked), 2 * 28);
  EXPECT_THAT(positions(cache, 0, 0), ElementsAre(3, 7, 20, 30, 32, 33, 34, 35, 36, 37, 38, 39));
  EXPECT_EQ(positions(parked, 0, 1), all);
  // The next forwards attend to the small cache only, which grows by their tokens.
  std::vector<float> v(4, 0.0f);
  for (int step = 1; step < kRefreshStride; ++step) {
    before_kv_forward(cache, **p, parked, false);
    EXPECT_FALSE((*p)->needs_attention());
    ASSERT_TRUE(cache.reserve(1).has_value());
    for (int h = 0; h < 2; ++h) cache.append(0, h, 39 + step, v.data(), v.data());
    cache.set_n_tokens(40 + step);
    EXPECT_EQ(enforce_kv_budget(cache, **p, b, &parked), 0) << step;
  }
  EXPECT_EQ(cache.length(0, 0), 12 + kRefreshStride - 1);
  // The kRefreshStride-th forward attends to everything again: the whole cache, with the entries
  // appended since, in position order; its weights select anew.
  before_kv_forward(cache, **p, parked, false);
  EXPECT_TRUE((*p)->needs_attention());
  EXPECT_EQ(parked.pages_held(), 0);
  all.resize(40 + kRefreshStride - 1);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(positions(cache, 0, 0), all);
  EXPECT_EQ(positions(cache, 0, 1), all);
  ASSERT_TRUE(cache.reserve(1).has_value());
  for (int h = 0; h < 2; ++h) cache.append(0, h, 39 + kRefreshStride, v.data(), v.data());
  cache.set_n_tokens(40 + kRefreshStride);
  const int n = cache.length(0, 0);
  for (int h = 0; h < 2; ++h) observe_heavy(**p, n, {0, 5, 11, 25}, 0, h);
  EXPECT_EQ(enforce_kv_budget(cache, **p, b, &parked), 2 * (n - 12));
  EXPECT_THAT(positions(cache, 0, 1), ElementsAre(0, 5, 11, 25, 40, 41, 42, 43, 44, 45, 46, 47));
  EXPECT_EQ(parked.length(0, 0), n);
  // The copies are the entries' bytes: a kept entry decodes to its position's values.
  std::vector<float> keys(static_cast<size_t>(12 * 4));
  cache.gather(0, 0, keys.data(), nullptr, nullptr);
  EXPECT_EQ(keys[4], 5.0f);
  EXPECT_EQ(keys[12], 25.0f);
  // Without a cache to park in, enforcing refresh is an error in the caller.
  EXPECT_DEATH(
      {
        KvCache c = filled_cache(shape, 40);
        auto r = make_kv_policy("refresh", shape);
        enforce_kv_budget(c, **r, b);
      },
      "parks what it evicts");
}

TEST(KvPolicies, RefreshKeepsAttendingToEverythingWhenThePoolCannotHoldTheSmallCopy) {
  // 2 slots of 40 entries: 3 pages each; a small copy of 12 entries needs 1 page per slot.
  for (const int max_pages : {6, 8}) {
    auto pool =
        std::make_shared<KvPool>(KvPoolOptions{1, 2, 4, KvType::kF32, KvType::kF32, 16, max_pages});
    KvCache cache = filled_cache(KvShape{1, 2, 4, 256}, 40, pool);
    KvCache parked = cache.empty_like();
    auto p = make_kv_policy("refresh", cache.shape());
    ASSERT_TRUE(p.has_value());
    before_kv_forward(cache, **p, parked, true);
    KvBudget b;
    b.entries = 12;
    const int64_t moved = enforce_kv_budget(cache, **p, b, &parked);
    EXPECT_EQ(moved, max_pages == 6 ? 0 : 56) << max_pages;
    EXPECT_EQ(cache.length(0, 0), max_pages == 6 ? 40 : 12) << max_pages;
    EXPECT_LE(pool->pages_in_use(), max_pages);
  }
}

TEST(KvPolicies, LargeCachesEvictInBatchesAndNeverHoldMoreThanTheBudget) {
  const KvShape shape{1, 1, 4, 1024};
  KvCache cache = filled_cache(shape, 600);
  auto p = make_kv_policy("window", shape);
  ASSERT_TRUE(p.has_value());
  KvBudget b;
  b.entries = 512;  // slack 512 / 256 = 2
  EXPECT_EQ(enforce_kv_budget(cache, **p, b), 90);
  EXPECT_EQ(cache.length(0, 0), 510);
  std::vector<float> v(4, 0.0f);
  int evictions = 0;
  for (int t = 600; t < 612; ++t) {
    ASSERT_TRUE(cache.reserve(1).has_value());
    cache.append(0, 0, t, v.data(), v.data());
    cache.set_n_tokens(t + 1);
    evictions += enforce_kv_budget(cache, **p, b) > 0 ? 1 : 0;
    EXPECT_LE(cache.length(0, 0), 512);
  }
  EXPECT_EQ(evictions, 4);  // one batch of 3 every 3 appends, not one entry per append
  // Under 256 kept entries the budget is exact.
  KvCache small = filled_cache(shape, 300);
  b.entries = 255;
  enforce_kv_budget(small, **p, b);
  EXPECT_EQ(small.length(0, 0), 255);
}

TEST(KvPolicies, PyramidGivesLowerLayersMoreAndKeepsTheMean) {
  const KvShape shape{8, 1, 4, 4096};
  auto p = make_kv_policy("pyramid", shape);
  ASSERT_TRUE(p.has_value());
  int sum = 0;
  for (int l = 0; l < 8; ++l) {
    sum += (*p)->layer_keep(l, 400, 1000);
    if (l > 0) {
      EXPECT_LT((*p)->layer_keep(l, 400, 1000), (*p)->layer_keep(l - 1, 400, 1000));
    }
  }
  EXPECT_EQ((*p)->layer_keep(7, 400, 1000), 20);   // keep / beta at the top
  EXPECT_EQ((*p)->layer_keep(0, 400, 1000), 780);  // 2 keep - top at the bottom
  EXPECT_NEAR(sum / 8.0, 400, 1);
  // With 600 tokens seen the bottom keeps them all and the top what is left of the mean.
  EXPECT_EQ((*p)->layer_keep(0, 400, 600), 600);
  EXPECT_EQ((*p)->layer_keep(7, 400, 600), 200);
  // Enforced per layer: a cache of 1000 entries at 40% keeps those counts.
  KvCache cache = filled_cache(shape, 1000);
  KvBudget b;
  b.fraction = 0.4;
  enforce_kv_budget(cache, **p, b);
  for (int l = 0; l < 8; ++l) {
    EXPECT_EQ(cache.length(l, 0), eviction_target((*p)->layer_keep(l, 400, 1000))) << l;
  }
}

TEST(KvPolicies, ABudgetOfEverythingNeverEvicts) {
  const KvShape shape{2, 2, 4, 64};
  for (const std::string& name : kv_policy_names()) {
    KvCache cache = filled_cache(shape, 40);
    auto p = make_kv_policy(name, shape);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(enforce_kv_budget(cache, **p, *parse_kv_budget("100%")), 0) << name;
    KvBudget fixed;
    fixed.entries = 40;
    EXPECT_EQ(enforce_kv_budget(cache, **p, fixed), 0) << name;
    EXPECT_EQ(cache.length(1, 1), 40);
  }
}

TEST(KvPolicies, ComplementAndEntryScoresCompaction) {
  EXPECT_THAT(complement({4, 1, 2}, 6), ElementsAre(0, 3, 5));
  EntryScores s(KvShape{1, 1, 4, 16});
  std::vector<float>& v = s.sized(0, 0, 5);
  std::iota(v.begin(), v.end(), 0.0f);
  const int drop[] = {1, 3};
  s.erase(0, 0, drop);
  EXPECT_THAT(s.at(0, 0), ElementsAre(0.0f, 2.0f, 4.0f));
  s.truncate(0, 0, 2);
  EXPECT_THAT(s.at(0, 0), ElementsAre(0.0f, 2.0f));
}

}  // namespace
}  // namespace pareto::kv
