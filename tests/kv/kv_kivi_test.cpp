// KIVI KV quantization (kv_kivi.h) and the cache that applies it (kv_cache.h): the round-trip
// bound each format implies, which entries are quantized when, and that eviction, rollback, fork
// and copies compose with it.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kv/kv_cache.h"
#include "kv/kv_kivi.h"

namespace pareto::kv {
namespace kv_kivi_test {
namespace {

// Rows with a per-channel offset and spread (keys have outlier channels: what KIVI's per-channel
// grouping is for), deterministic in (seed, row).
std::vector<float> row(int seed, int r, int head_dim) {
  std::mt19937 rng(static_cast<uint32_t>(seed * 100003 + r));
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(head_dim));
  for (int c = 0; c < head_dim; ++c) {
    const float offset = c % 7 == 0 ? 9.0f : 0.3f * static_cast<float>(c % 3);
    const float spread = c % 5 == 0 ? 4.0f : 1.0f;
    v[static_cast<size_t>(c)] = offset + spread * normal(rng);
  }
  return v;
}

float f16_round(float x) {
  return f16_to_f32(f32_to_f16(x));
}

// Half a step of `bits` over [lo, hi], with the slack of the f16 parameters (minimum rounded
// down, scale up: at most 2 f16 ulps of the range's ends).
float half_step(int bits, float lo, float hi) {
  const float slack = 2e-3f * std::max(std::fabs(lo), std::fabs(hi)) + 1e-6f;
  return 0.5f * (hi - lo + slack) / static_cast<float>((1 << bits) - 1) + slack;
}

TEST(Kivi, KeysRoundTripWithinHalfAStepOfTheirChannelsRange) {
  for (int bits : {4, 2}) {
    const int hd = 48, n = 32;
    std::vector<float> keys;
    for (int r = 0; r < n; ++r) {
      const auto v = row(1, r, hd);
      keys.insert(keys.end(), v.begin(), v.end());
    }
    std::vector<uint16_t> params(2 * hd);
    kivi::key_group_params(bits, keys.data(), n, hd, params.data());
    std::vector<uint8_t> codes(kivi::key_code_bytes(bits, hd));
    EXPECT_EQ(codes.size(), static_cast<size_t>(hd * bits / 8));
    std::vector<float> out(hd);
    for (int c = 0; c < hd; ++c) {
      float lo = keys[c], hi = keys[c];
      for (int r = 0; r < n; ++r) {
        lo = std::min(lo, keys[static_cast<size_t>(r * hd + c)]);
        hi = std::max(hi, keys[static_cast<size_t>(r * hd + c)]);
      }
      // The parameters are the range's, not looser: a scale no more than 2 ulps above it.
      EXPECT_LE(f16_to_f32(params[c]), lo);
      EXPECT_GE(f16_to_f32(params[c]), lo - 2e-3f * std::fabs(lo) - 1e-6f);
      EXPECT_LE(f16_to_f32(params[hd + c]) * ((1 << bits) - 1),
                (hi - lo) * 1.002f + 2e-3f * std::fabs(lo) + 1e-6f);
    }
    double err = 0;
    for (int r = 0; r < n; ++r) {
      kivi::encode_key(bits, keys.data() + r * hd, params.data(), hd, codes.data());
      kivi::decode_key(bits, codes.data(), params.data(), hd, out.data());
      for (int c = 0; c < hd; ++c) {
        float lo = keys[c], hi = keys[c];
        for (int q = 0; q < n; ++q) {
          lo = std::min(lo, keys[static_cast<size_t>(q * hd + c)]);
          hi = std::max(hi, keys[static_cast<size_t>(q * hd + c)]);
        }
        const float e = std::fabs(out[c] - keys[static_cast<size_t>(r * hd + c)]);
        EXPECT_LE(e, half_step(bits, lo, hi))
            << "bits " << bits << " row " << r << " channel " << c;
        err += e;
      }
    }
    // Not trivially within the bound: the codes do carry the values (mean error well under it).
    EXPECT_GT(err, 0.0);
  }
}

TEST(Kivi, ValuesRoundTripWithinHalfAStepOfTheirGroupsRange) {
  for (int bits : {4, 2}) {
    for (int hd : {8, 48, 64}) {  // one short group, a full and a short one, two full ones
      std::vector<uint8_t> enc(kivi::value_bytes(bits, hd));
      size_t expected = 0;
      for (int c = 0; c < hd; c += 32) expected += 4 + (std::min(32, hd - c) * bits + 7) / 8;
      EXPECT_EQ(enc.size(), expected);
      std::vector<float> out(hd);
      for (int r = 0; r < 20; ++r) {
        const auto v = row(2, r, hd);
        kivi::encode_value(bits, v.data(), hd, enc.data());
        kivi::decode_value(bits, enc.data(), hd, out.data());
        for (int c0 = 0; c0 < hd; c0 += 32) {
          const int n = std::min(32, hd - c0);
          const auto [lo, hi] = std::minmax_element(v.begin() + c0, v.begin() + c0 + n);
          for (int c = c0; c < c0 + n; ++c) {
            EXPECT_LE(std::fabs(out[c] - v[c]), half_step(bits, *lo, *hi))
                << "bits " << bits << " head_dim " << hd << " channel " << c;
          }
        }
      }
    }
  }
  // A constant group decodes exactly (scale 0).
  std::vector<float> flat(32, 1.5f), out(32);
  std::vector<uint8_t> enc(kivi::value_bytes(4, 32));
  kivi::encode_value(4, flat.data(), 32, enc.data());
  kivi::decode_value(4, enc.data(), 32, out.data());
  EXPECT_EQ(out, flat);
}

constexpr int kLayers = 2, kHeads = 2, kHeadDim = 48;

std::shared_ptr<KvPool> kivi_pool(KvType k, KvType v, int residual, int group = 32) {
  KvPoolOptions o{kLayers, kHeads, kHeadDim, k, v};
  o.kivi_residual = residual;
  o.kivi_group = group;
  return std::make_shared<KvPool>(o);
}

// Key of (layer, head, position): row(seed = layer * 10 + head, position); values negated.
std::vector<float> key_of(int l, int h, int p) {
  return row(l * 10 + h, p, kHeadDim);
}
std::vector<float> value_of(int l, int h, int p) {
  auto v = row(l * 10 + h + 50, p, kHeadDim);
  return v;
}

// One forward's worth: reserve, then positions [first, first + n).
void step(KvCache& cache, int first, int n) {
  ASSERT_TRUE(cache.reserve(n).has_value());
  for (int p = first; p < first + n; ++p) {
    for (int l = 0; l < kLayers; ++l) {
      for (int h = 0; h < kHeads; ++h) {
        cache.append(l, h, p, key_of(l, h, p).data(), value_of(l, h, p).data());
      }
    }
  }
  cache.set_n_tokens(first + n);
}

struct Rows {
  std::vector<float> keys, values;
  std::vector<int32_t> positions;
  bool operator==(const Rows&) const = default;
};

Rows gather_rows(const KvCache& cache, int l, int h) {
  const auto n = static_cast<size_t>(cache.length(l, h));
  Rows r{std::vector<float>(n * kHeadDim), std::vector<float>(n * kHeadDim),
         std::vector<int32_t>(n)};
  cache.gather(l, h, r.keys.data(), r.values.data(), r.positions.data());
  return r;
}

TEST(KiviCache, QuantizesWholeGroupsOnceTheyLeaveTheRecentWindow) {
  KvCache cache(kivi_pool(KvType::kKivi4, KvType::kKivi4, /*residual=*/64), 1024);
  for (int p = 0; p < 200; ++p) step(cache, p, 1);
  // The last reserve saw n_tokens 199: groups wholly below (199 - 64) / 32 * 32 = 128.
  EXPECT_EQ(cache.quantized(0, 0), 128);
  step(cache, 200, 0);  // a reserve at 200 changes nothing: (200 - 64) / 32 * 32 = 128
  EXPECT_EQ(cache.quantized(1, 1), 128);
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kHeads; ++h) {
      const Rows r = gather_rows(cache, l, h);
      ASSERT_EQ(r.positions.size(), 200u);
      std::vector<std::vector<float>> keys;  // f16-rounded, as the recent window holds them
      for (int p = 0; p < 200; ++p) {
        keys.push_back(key_of(l, h, p));
        for (float& x : keys.back()) x = f16_round(x);
      }
      for (int p = 0; p < 200; ++p) {
        const auto& k = keys[static_cast<size_t>(p)];
        const auto v = value_of(l, h, p);
        for (int c = 0; c < kHeadDim; ++c) {
          const float gk = r.keys[static_cast<size_t>(p * kHeadDim + c)];
          const float gv = r.values[static_cast<size_t>(p * kHeadDim + c)];
          if (p >= 128) {
            // Recent: exactly the f16 rounding.
            ASSERT_EQ(gk, k[c]);
            ASSERT_EQ(gv, f16_round(v[c]));
            continue;
          }
          // Quantized: the key within half a step of its channel's range over its group of 32
          // positions (from f16 copies), the value of its own group of 32 channels.
          float lo = INFINITY, hi = -INFINITY;
          for (int q = p / 32 * 32; q < p / 32 * 32 + 32; ++q) {
            lo = std::min(lo, keys[static_cast<size_t>(q)][c]);
            hi = std::max(hi, keys[static_cast<size_t>(q)][c]);
          }
          ASSERT_LE(std::fabs(gk - k[c]), half_step(4, lo, hi)) << p << " " << c;
          const int c0 = c / 32 * 32, n = std::min(32, kHeadDim - c0);
          lo = INFINITY, hi = -INFINITY;
          for (int d = c0; d < c0 + n; ++d) {
            lo = std::min(lo, f16_round(v[d]));
            hi = std::max(hi, f16_round(v[d]));
          }
          ASSERT_LE(std::fabs(gv - f16_round(v[c])), half_step(4, lo, hi)) << p << " " << c;
        }
      }
    }
  }
  // Memory: 4-bit codes in the pages; recent f16 rows and 4 groups' parameters beside them.
  const int64_t per_slot_pages = (200 + 15) / 16;
  const int64_t expected = kLayers * kHeads *
                           (per_slot_pages * static_cast<int64_t>(cache.pool().page_bytes()) +
                            72 * 2 * kHeadDim * 2 + 4 * 2 * kHeadDim * 2);
  EXPECT_EQ(cache.bytes_held(), expected);
  EXPECT_EQ(cache.pool().key_bytes(), 24u);
  EXPECT_EQ(cache.pool().value_bytes(), 4u + 16u + 4u + 8u);
  EXPECT_EQ(cache.full_blocks(), 0);  // no prefix sharing for KIVI caches
}

TEST(KiviCache, EitherSideAloneAndTwoBitsWork) {
  for (auto [k, v] :
       {std::pair{KvType::kKivi2, KvType::kF16}, std::pair{KvType::kF16, KvType::kKivi2},
        std::pair{KvType::kKivi2, KvType::kKivi2}}) {
    KvCache cache(kivi_pool(k, v, 0, 8), 256);
    for (int p = 0; p < 40; ++p) step(cache, p, 1);
    EXPECT_EQ(cache.quantized(0, 1), 32);  // (39 - 0) / 8 * 8
    const Rows r = gather_rows(cache, 0, 1);
    int exact_keys = 0;
    for (int p = 0; p < 40; ++p) {
      for (int c = 0; c < kHeadDim; ++c) {
        const size_t i = static_cast<size_t>(p * kHeadDim + c);
        const float ek = f16_round(key_of(0, 1, p)[c]), ev = f16_round(value_of(0, 1, p)[c]);
        if (k == KvType::kF16 || p >= 32) {
          ASSERT_EQ(r.keys[i], ek);
        } else {
          exact_keys += r.keys[i] == ek;  // each channel's group minimum decodes exactly
        }
        if (v == KvType::kF16 || p >= 32) {
          ASSERT_EQ(r.values[i], ev);
        }
      }
    }
    if (k != KvType::kF16) {
      EXPECT_LT(exact_keys, 32 * kHeadDim / 2);
    }
  }
}

TEST(KiviCache, EvictionMovesQuantizedAndRecentEntriesUnchanged) {
  KvCache cache(kivi_pool(KvType::kKivi4, KvType::kKivi4, 32, 16), 512);
  step(cache, 0, 100);  // a prompt: nothing quantized until the next reserve
  EXPECT_EQ(cache.quantized(0, 0), 0);
  step(cache, 100, 1);  // (100 - 32) / 16 * 16 = 64
  ASSERT_EQ(cache.quantized(0, 0), 64);
  const Rows before = gather_rows(cache, 0, 0);
  const int64_t bytes_before = cache.bytes_held();
  // Evict a whole key group (positions 16..31), scattered quantized entries and recent ones.
  std::vector<int> evict;
  for (int j = 16; j < 32; ++j) evict.push_back(j);
  for (int j : {40, 41, 63, 64, 80, 99}) evict.push_back(j);
  cache.erase(0, 0, evict);
  EXPECT_EQ(cache.quantized(0, 0), 64 - 16 - 3);
  const Rows after = gather_rows(cache, 0, 0);
  Rows expected;
  for (int j = 0; j < 101; ++j) {
    if (std::find(evict.begin(), evict.end(), j) != evict.end()) continue;
    expected.positions.push_back(before.positions[j]);
    for (int c = 0; c < kHeadDim; ++c) {
      expected.keys.push_back(before.keys[static_cast<size_t>(j * kHeadDim + c)]);
      expected.values.push_back(before.values[static_cast<size_t>(j * kHeadDim + c)]);
    }
  }
  EXPECT_TRUE(after == expected);  // bit for bit: nothing re-quantized
  // The emptied group's parameters and the erased recent rows are given back.
  EXPECT_LT(cache.bytes_held(), bytes_before);
  // Quantizing later groups after eviction: the next groups keep their own parameters.
  for (int p = 101; p < 140; ++p) step(cache, p, 1);
  // Boundary (139 - 32) / 16 * 16 = 96: positions below it, less the 21 evicted there.
  EXPECT_EQ(cache.quantized(0, 0), 96 - 21);
  const Rows later = gather_rows(cache, 0, 0);
  EXPECT_TRUE(
      std::equal(expected.keys.begin(), expected.keys.begin() + 45 * kHeadDim, later.keys.begin()));
}

TEST(KiviCache, RollbackOfADraftLeavesTheStateOfARunThatNeverDraftedIt) {
  // Positions 118..123 drafted at n_tokens 118, 119 kept. With residual 24 and groups of 16 the
  // drafted tokens cross a boundary ((124 - 24) / 16 * 16 = 96, (118 - 24) / 16 * 16 = 80):
  // quantizing by what was appended rather than what was kept would show here.
  auto pool = kivi_pool(KvType::kKivi4, KvType::kKivi2, 24, 16);
  KvCache drafted(pool, 512), plain(pool, 512);
  for (KvCache* c : {&drafted, &plain}) step(*c, 0, 118);
  step(drafted, 118, 6);
  drafted.truncate(119);
  step(plain, 118, 1);
  for (int p = 119; p < 160; ++p) {
    step(drafted, p, 1);
    step(plain, p, 1);
    for (int l = 0; l < kLayers; ++l) {
      for (int h = 0; h < kHeads; ++h) {
        ASSERT_EQ(drafted.quantized(l, h), plain.quantized(l, h)) << p;
        ASSERT_TRUE(gather_rows(drafted, l, h) == gather_rows(plain, l, h)) << p;
      }
    }
  }
  EXPECT_EQ(drafted.bytes_held(), plain.bytes_held());
  // A rollback deep into quantized entries: they go, and the positions are quantized afresh.
  plain.truncate(50);
  EXPECT_EQ(plain.quantized(0, 0), 50);
  for (int p = 50; p < 160; ++p) step(plain, p, 1);
  KvCache fresh(pool, 512);
  for (int p = 0; p < 160; ++p) step(fresh, p, 1);
  // Positions 48..49 kept their group's parameters (from 48..63, as in `fresh`); 50..63 were
  // quantized again as a group of their own.
  const Rows a = gather_rows(plain, 1, 0), b = gather_rows(fresh, 1, 0);
  EXPECT_EQ(a.positions, b.positions);
  EXPECT_TRUE(std::equal(a.values.begin(), a.values.end(), b.values.begin()));
  EXPECT_TRUE(std::equal(a.keys.begin(), a.keys.begin() + 50 * kHeadDim, b.keys.begin()));
  EXPECT_FALSE(std::equal(a.keys.begin() + 50 * kHeadDim, a.keys.begin() + 64 * kHeadDim,
                          b.keys.begin() + 50 * kHeadDim));
  EXPECT_TRUE(
      std::equal(a.keys.begin() + 64 * kHeadDim, a.keys.end(), b.keys.begin() + 64 * kHeadDim));
}

TEST(KiviCache, ForksAndCopiesCarryTheirQuantizationState) {
  KvCache cache(kivi_pool(KvType::kKivi4, KvType::kKivi4, 16, 16), 512);
  for (int p = 0; p < 70; ++p) step(cache, p, 1);
  KvCache fork = cache.fork();
  for (int p = 70; p < 90; ++p) step(fork, p, 1);
  // The original is untouched by the fork's quantization (copy on write of the shared pages).
  EXPECT_EQ(cache.quantized(0, 0), 48);
  EXPECT_EQ(fork.quantized(0, 0), 64);
  KvCache again(kivi_pool(KvType::kKivi4, KvType::kKivi4, 16, 16), 512);
  for (int p = 0; p < 70; ++p) step(again, p, 1);
  for (int h = 0; h < kHeads; ++h)
    EXPECT_TRUE(gather_rows(cache, 1, h) == gather_rows(again, 1, h));
  // copy_entries: quantized and recent entries arrive as they were.
  KvCache small = cache.empty_like();
  const std::vector<int> chosen = {0, 3, 17, 40, 47, 48, 60, 69};
  cache.copy_entries(1, 1, chosen, small);
  const Rows all = gather_rows(cache, 1, 1), some = gather_rows(small, 1, 1);
  ASSERT_EQ(some.positions.size(), chosen.size());
  EXPECT_EQ(small.quantized(1, 1), 5);
  for (size_t i = 0; i < chosen.size(); ++i) {
    EXPECT_EQ(some.positions[i], all.positions[static_cast<size_t>(chosen[i])]);
    for (int c = 0; c < kHeadDim; ++c) {
      EXPECT_EQ(some.keys[i * kHeadDim + c],
                all.keys[static_cast<size_t>(chosen[i] * kHeadDim + c)]);
      EXPECT_EQ(some.values[i * kHeadDim + c],
                all.values[static_cast<size_t>(chosen[i] * kHeadDim + c)]);
    }
  }
  // Memory of caches together: what they share counts once. Alone, as bytes_held.
  const KvCache* alone[] = {&cache};
  EXPECT_EQ(KvCache::bytes_held(alone), cache.bytes_held());
  // The fork shares the pages it has not written and every untouched key group's parameters.
  const KvCache* forked[] = {&cache, &fork};
  EXPECT_LT(KvCache::bytes_held(forked), cache.bytes_held() + fork.bytes_held());
  EXPECT_GT(KvCache::bytes_held(forked), fork.bytes_held());
  // The copy has pages of its own; its key groups' parameters are the whole cache's (refresh's
  // small copy beside the parked whole cache): counted once.
  const KvCache* copied[] = {&cache, &small};
  // small's quantized entries 0, 3, 17, 40, 47 lie in three groups of 16 positions, each with
  // [2 * head_dim] f16 parameters.
  const int64_t shared_params = 3 * 2 * 2 * kHeadDim;
  EXPECT_EQ(KvCache::bytes_held(copied), cache.bytes_held() + small.bytes_held() - shared_params);
}

TEST(KiviCache, TypeNamesParse) {
  EXPECT_EQ(parse_kv_type("kivi4").value(), KvType::kKivi4);
  EXPECT_EQ(parse_kv_type("kivi2").value(), KvType::kKivi2);
  const auto bad = parse_kv_type("kivi3");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("kivi4"), std::string::npos);
  EXPECT_EQ(kivi_bits(KvType::kQ4_0), 0);
}

}  // namespace
}  // namespace kv_kivi_test
}  // namespace pareto::kv
