// The NEON (AArch64) quantized kernels against the portable references, bit for bit: Q8_0 / Q4_0
// dots and matmul rows (lanes and repacked orders, decode and prefill tiling), the Q8_0 and Q8_K
// activation quantizers, and the K-quant x Q8_K dots in llama.cpp's AVX2 order. The public entry
// points (*_fast, dot_kquant_q8k, quantize_row_q8_K) run the NEON code on AArch64; elsewhere these
// tests are skipped (quant_simd_test.cpp covers the AVX2 versions).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace {

#define SKIP_WITHOUT_NEON() \
  if (!quant_neon_available()) GTEST_SKIP() << "not an AArch64 NEON build"

// The kernels' forms to test: with SDOT where the CPU has it (qemu does), and without.
std::vector<bool> dotprod_modes() {
  if (quant_neon_sdot_supported()) return {true, false};
  return {false};
}

// The NEON entry points with an explicit form (`sdot`); elsewhere (tests skipped) the dispatchers.
#if defined(__aarch64__) && defined(__ARM_NEON)
float neon_dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  return dot_q8_0_lanes_neon(w, x, n, sdot);
}
float neon_dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  return dot_q4_0_lanes_neon(w, x, n, sdot);
}
float neon_dot_q4_0_repacked(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  return dot_q4_0_repacked_neon(w, x, n, sdot);
}
void neon_rows(const WeightView& w, const PreparedActivations& x, int64_t b, int64_t e, float* y,
               bool sdot) {
  if (w.type == TensorType::Q8_0) return matmul_q8_0_rows_neon(w, x, b, e, y, sdot);
  if (w.type == TensorType::Q4_0) return matmul_q4_0_rows_neon(w, x, b, e, y, sdot);
  matmul_kquant_rows_neon(w, x, b, e, y, sdot);
}
float neon_dot_kquant(TensorType type, const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  const auto* y = reinterpret_cast<const BlockQ8_K*>(x);
  if (type == TensorType::Q4_K)
    return dot_q4_K_q8_K_neon(reinterpret_cast<const BlockQ4_K*>(w), y, n / kQK_K, sdot);
  if (type == TensorType::Q5_K)
    return dot_q5_K_q8_K_neon(reinterpret_cast<const BlockQ5_K*>(w), y, n / kQK_K, sdot);
  return dot_q6_K_q8_K_neon(reinterpret_cast<const BlockQ6_K*>(w), y, n / kQK_K, sdot);
}
#else
float neon_dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t n, bool) {
  return dot_q8_0_lanes_fast(w, x, n);
}
float neon_dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t n, bool) {
  return dot_q4_0_lanes_fast(w, x, n);
}
float neon_dot_q4_0_repacked(const uint8_t* w, const uint8_t* x, int64_t n, bool) {
  return dot_q4_0_repacked_fast(w, x, n);
}
void neon_rows(const WeightView& w, const PreparedActivations& x, int64_t b, int64_t e, float* y,
               bool) {
  if (w.type == TensorType::Q8_0) return matmul_q8_0_rows_fast(w, x, b, e, y);
  if (w.type == TensorType::Q4_0) return matmul_q4_0_rows_fast(w, x, b, e, y);
  matmul_kquant_rows(w, x, b, e, y);
}
float neon_dot_kquant(TensorType type, const uint8_t* w, const uint8_t* x, int64_t n, bool) {
  return dot_kquant_q8k_fast(type, w, x, n);
}
#endif

// Mixed magnitudes per 32-block; every 11th block all zero.
std::vector<float> random_activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale_dist(-6.0f, 6.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float scale = b % 11 == 5 ? 0.0f : std::exp2(scale_dist(rng));
    for (int64_t j = 0; j < kQuantBlock; ++j) v[b * kQuantBlock + j] = scale * dist(rng);
  }
  return v;
}

// Q8_0 activation rows; block 1 (when present) holds +-127 only, the largest lane sums.
std::vector<uint8_t> q8_0_activations(int64_t n, uint32_t seed) {
  auto x = random_activations(n, seed);
  if (n >= 2 * kQuantBlock) {
    for (int64_t j = 0; j < kQuantBlock; ++j) x[kQuantBlock + j] = j % 3 == 0 ? 4.0f : -4.0f;
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(TensorType::Q8_0, n)));
  quantize_activations_q8_0(x.data(), reinterpret_cast<BlockQ8_0*>(bytes.data()), n);
  return bytes;
}

// Random quant bytes (Q8_0 -128 and every nibble included) with random fp16 scales; in row 0,
// block 1 is all -128 (Q8_0) / all 0 nibbles (Q4_0: -8), with the largest finite fp16 scale if
// big_scale (which then dominates the row's sum, so only some tests ask for it).
std::vector<uint8_t> random_weights(TensorType type, int64_t rows, int64_t cols, uint32_t seed,
                                    bool big_scale = false) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const int64_t block_bytes = traits(type).block_bytes;
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(type, cols) * rows));
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  for (size_t b = 0; b < bytes.size(); b += static_cast<size_t>(block_bytes)) {
    const uint16_t d = f32_to_f16(scale(rng));
    std::memcpy(bytes.data() + b, &d, 2);
  }
  if (cols >= 2 * kQuantBlock) {
    uint8_t* blk = bytes.data() + block_bytes;
    if (big_scale) {
      const uint16_t big = f32_to_f16(65504.0f);
      std::memcpy(blk, &big, 2);
    }
    std::memset(blk + 2, type == TensorType::Q8_0 ? 0x80 : 0x00, block_bytes - 2);
  }
  return bytes;
}

PreparedActivations prepared(const std::vector<uint8_t>& bytes, TensorType type, int64_t cols,
                             int64_t n_tokens) {
  return {type, bytes.data(), row_bytes(type, cols), n_tokens};
}

TEST(QuantNeon, Q8_0ActivationQuantizationIsBitIdentical) {
  SKIP_WITHOUT_NEON();
  for (int64_t n : {int64_t{32}, int64_t{96}, int64_t{32 * 37}, int64_t{4096}}) {
    auto x = random_activations(n, static_cast<uint32_t>(n) + 1);
    // Exact halves after scaling (round half to even), and a block of huge and tiny values.
    x[0] = 127.0f;
    x[1] = 0.5f;
    x[2] = -1.5f;
    x[3] = 2.5f;
    if (n >= 64) {
      x[32] = 3.0e38f;
      x[33] = -1.0e-30f;
      x[34] = -3.0e38f;
      x[35] = 1.0e-45f;
    }
    const auto bytes = static_cast<size_t>(row_bytes(TensorType::Q8_0, n));
    std::vector<uint8_t> expected(bytes), got(bytes);
    quantize_activations_q8_0(x.data(), reinterpret_cast<BlockQ8_0*>(expected.data()), n);
    quantize_activations_q8_0_fast(x.data(), reinterpret_cast<BlockQ8_0*>(got.data()), n);
    EXPECT_EQ(got, expected) << "n=" << n;
  }
}

TEST(QuantNeon, RowDotsAreBitIdenticalToLaneLoops) {
  SKIP_WITHOUT_NEON();
  for (const bool dot : dotprod_modes()) {
    SCOPED_TRACE(dot ? "with SDOT" : "without SDOT");
    for (int64_t n_blocks : {1, 2, 3, 5, 7, 33, 65, 130}) {
      const int64_t n = n_blocks * kQuantBlock;
      const auto seed = static_cast<uint32_t>(n_blocks);
      const auto x = q8_0_activations(n, seed);
      for (bool big : {false, true}) {
        const auto w8 = random_weights(TensorType::Q8_0, 1, n, seed + 100, big);
        const auto w4 = random_weights(TensorType::Q4_0, 1, n, seed + 200, big);
        const float q8 = dot_q8_0_lanes_ref(w8.data(), x.data(), n);
        const float q4 = dot_q4_0_lanes_ref(w4.data(), x.data(), n);
        const float q4r = dot_q4_0_repacked_ref(w4.data(), x.data(), n);
        EXPECT_EQ(neon_dot_q8_0(w8.data(), x.data(), n, dot), q8) << n_blocks;
        EXPECT_EQ(neon_dot_q4_0(w4.data(), x.data(), n, dot), q4) << n_blocks;
        EXPECT_EQ(neon_dot_q4_0_repacked(w4.data(), x.data(), n, dot), q4r) << n_blocks;
        // The dispatchers (the form this CPU picks).
        EXPECT_EQ(dot_q8_0_lanes_fast(w8.data(), x.data(), n), q8) << n_blocks;
        EXPECT_EQ(dot_q4_0_lanes_fast(w4.data(), x.data(), n), q4) << n_blocks;
        EXPECT_EQ(dot_q4_0_repacked_fast(w4.data(), x.data(), n), q4r) << n_blocks;
      }
    }
  }
}

// Q8_0 and both Q4_0 orders (rows % 8 == 0 selects repacked), token counts around the token tile
// (decode path below 4 tokens), row ranges that start and end inside row groups.
TEST(QuantNeon, MatmulRowsAreBitIdenticalToLaneLoops) {
  SKIP_WITHOUT_NEON();
  for (const bool dot : dotprod_modes()) {
    SCOPED_TRACE(dot ? "with SDOT" : "without SDOT");
    struct Case {
      TensorType type;
      int64_t rows, row_begin, row_end;
      bool repacked;
    };
    const int64_t cols = 32 * 11;
    for (const Case c :
         {Case{TensorType::Q8_0, 13, 2, 13, false}, Case{TensorType::Q8_0, 9, 0, 9, false},
          Case{TensorType::Q4_0, 13, 1, 12, false}, Case{TensorType::Q4_0, 5, 0, 5, false},
          Case{TensorType::Q4_0, 24, 2, 24, true}, Case{TensorType::Q4_0, 40, 3, 37, true},
          Case{TensorType::Q4_0, 16, 0, 16, true}, Case{TensorType::Q4_0, 8, 0, 8, true}}) {
      const auto wbytes =
          random_weights(c.type, c.rows, cols, 7 + static_cast<uint32_t>(c.rows), c.rows % 2 == 1);
      const WeightView w{c.type, wbytes.data(), c.rows, cols};
      for (int64_t n_tokens : {1, 2, 3, 4, 5, 7, 8, 9}) {
        const auto xbytes = q8_0_activations(cols * n_tokens, 40 + static_cast<uint32_t>(n_tokens));
        const PreparedActivations x = prepared(xbytes, TensorType::Q8_0, cols, n_tokens);
        std::vector<float> got(static_cast<size_t>(n_tokens * c.rows), -1.0f);
        neon_rows(w, x, c.row_begin, c.row_end, got.data(), dot);
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (int64_t r = 0; r < c.rows; ++r) {
            const float out = got[t * c.rows + r];
            if (r < c.row_begin || r >= c.row_end) {
              EXPECT_EQ(out, -1.0f) << "row outside the range was written";
              continue;
            }
            const float expected = c.type == TensorType::Q8_0
                                       ? dot_q8_0_lanes_ref(w.row(r), x.row(t), cols)
                                   : c.repacked ? dot_q4_0_repacked_ref(w.row(r), x.row(t), cols)
                                                : dot_q4_0_lanes_ref(w.row(r), x.row(t), cols);
            EXPECT_EQ(out, expected) << type_name(c.type) << " rows=" << c.rows
                                     << " tokens=" << n_tokens << " t=" << t << " r=" << r;
          }
        }
      }
    }
  }
}

// K-quant weight rows of random bytes (every quant, scale and min pattern) with random fp16
// super-block scales; block 1 (when present) has every quant and scale byte at its maximum (Q6_K:
// scales -128), and if big_scale the largest finite fp16 scales.
std::vector<uint8_t> random_kquant_weights(TensorType type, int64_t n_blocks, uint32_t seed,
                                           bool big_scale = false) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const int64_t block_bytes = traits(type).block_bytes;
  std::vector<uint8_t> w(static_cast<size_t>(n_blocks * block_bytes));
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  if (n_blocks >= 2) {
    uint8_t* blk = w.data() + block_bytes;
    std::memset(blk, 0xff, block_bytes);
    if (type == TensorType::Q6_K) std::memset(blk + 192, 0x80, 16);  // scales: -128
  }
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = w.data() + b * block_bytes;
    const bool big = big_scale && b == 1;
    const float s = big ? 65504.0f : scale(rng);
    const uint16_t d = f32_to_f16(s), dmin = f32_to_f16(big ? -65504.0f : scale(rng));
    if (type == TensorType::Q6_K) {
      std::memcpy(blk + block_bytes - 2, &d, 2);
    } else {
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &dmin, 2);
    }
  }
  return w;
}

// Q8_K rows: quantized activations, except block 0 whose quants are random in [-128, 127]
// (bsums consistent with the quants), with a large scale if big_scale.
std::vector<uint8_t> q8_K_activations(int64_t n, uint32_t seed, bool big_scale = false) {
  const auto xf = random_activations(n, seed);
  std::vector<uint8_t> x(static_cast<size_t>(row_bytes(TensorType::Q8_K, n)));
  quantize_row(TensorType::Q8_K, xf.data(), x.data(), n);
  BlockQ8_K blk;
  std::mt19937 rng(seed + 7);
  std::uniform_int_distribution<int> q(-128, 127);
  blk.d = big_scale ? 1.0e10f : 0.03f;
  for (auto& v : blk.qs) v = static_cast<int8_t>(q(rng));
  for (int g = 0; g < kQK_K / 16; ++g) {
    int sum = 0;
    for (int k = 0; k < 16; ++k) sum += blk.qs[16 * g + k];
    blk.bsums[g] = static_cast<int16_t>(sum);
  }
  std::memcpy(x.data(), &blk, sizeof(blk));
  return x;
}

TEST(QuantNeon, KQuantDotsAreBitIdenticalToDefaultOrder) {
  SKIP_WITHOUT_NEON();
  for (const bool dot : dotprod_modes()) {
    SCOPED_TRACE(dot ? "with SDOT" : "without SDOT");
    // Several rows per length: a last-bit difference in one float step shows in only some sums.
    for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      for (int64_t n_blocks : {1, 2, 3, 7, 16}) {
        const int64_t n = n_blocks * kQK_K;
        for (uint32_t trial = 0; trial < 8; ++trial) {
          const auto seed =
              static_cast<uint32_t>(n_blocks * 31 + static_cast<int>(type) * 7 + trial * 1000);
          auto w = random_kquant_weights(type, n_blocks, seed, trial == 0);
          if (trial >= 6 && type != TensorType::Q6_K) {
            // All quants 0: only the mins term is left (its float order alone is checked).
            const int64_t block_bytes = traits(type).block_bytes;
            for (int64_t b = 0; b < n_blocks; ++b) {
              std::memset(w.data() + b * block_bytes + 16, 0,
                          static_cast<size_t>(block_bytes - 16));
            }
          }
          const auto x = q8_K_activations(n, seed + 1, trial == 1);
          const float expected = dot_kquant_q8k_ref(type, w.data(), x.data(), n);
          EXPECT_EQ(neon_dot_kquant(type, w.data(), x.data(), n, dot), expected)
              << type_name(type) << " blocks=" << n_blocks << " trial=" << trial;
          EXPECT_EQ(dot_kquant_q8k(type, w.data(), x.data(), n), expected)
              << type_name(type) << " blocks=" << n_blocks << " trial=" << trial;
          EXPECT_EQ(dot_kquant_q8k_fast(type, w.data(), x.data(), n), expected)
              << type_name(type) << " blocks=" << n_blocks << " trial=" << trial;
        }
      }
    }
  }
}

TEST(QuantNeon, KQuantMatmulRowsEqualReferenceDots) {
  SKIP_WITHOUT_NEON();
  for (const bool dot : dotprod_modes()) {
    SCOPED_TRACE(dot ? "with SDOT" : "without SDOT");
    const int64_t n_blocks = 3, cols = n_blocks * kQK_K, rows = 7;
    for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      const auto wbytes = random_kquant_weights(type, rows * n_blocks, 5);
      const WeightView w{type, wbytes.data(), rows, cols};
      for (int64_t n_tokens : {1, 3, 4, 5, 9}) {
        std::vector<uint8_t> xbytes;
        for (int64_t t = 0; t < n_tokens; ++t) {
          const auto row = q8_K_activations(cols, 90 + static_cast<uint32_t>(t), t == 1);
          xbytes.insert(xbytes.end(), row.begin(), row.end());
        }
        const PreparedActivations x = prepared(xbytes, TensorType::Q8_K, cols, n_tokens);
        std::vector<float> got(static_cast<size_t>(rows * n_tokens), -1.0f);
        neon_rows(w, x, 1, rows, got.data(), dot);
        std::vector<float> dispatched(got.size(), -1.0f);  // the form this CPU picks
        matmul_kquant_rows(w, x, 1, rows, dispatched.data());
        EXPECT_EQ(dispatched, got);
        for (int64_t t = 0; t < n_tokens; ++t) {
          EXPECT_EQ(got[t * rows], -1.0f);
          for (int64_t r = 1; r < rows; ++r) {
            EXPECT_EQ(got[t * rows + r], dot_kquant_q8k_ref(type, w.row(r), x.row(t), cols))
                << type_name(type) << " t=" << t << " r=" << r;
          }
        }
      }
    }
  }
}

TEST(QuantNeon, Q8KQuantizationIsBitIdentical) {
  SKIP_WITHOUT_NEON();
  const int64_t n_blocks = 9, n = n_blocks * kQK_K;
  auto x = random_activations(n, 17);
  // Block 1: ties after scaling (max 127 -> iscale -1), the max's magnitude first negative then
  // positive. Block 2: all zero. Block 3: a NaN (skipped by the max search) and huge values.
  // Block 4: infinities. Block 5: tiny (subnormal) values only.
  float* b1 = x.data() + kQK_K;
  for (int j = 0; j < kQK_K; ++j) b1[j] = 0.5f * static_cast<float>(j % 200 - 100);
  b1[7] = -127.0f;
  b1[9] = 127.0f;
  std::fill(x.begin() + 2 * kQK_K, x.begin() + 3 * kQK_K, 0.0f);
  x[3 * kQK_K + 5] = std::numeric_limits<float>::quiet_NaN();
  x[3 * kQK_K + 6] = 3.0e38f;
  x[3 * kQK_K + 7] = -3.0e38f;
  x[4 * kQK_K + 3] = std::numeric_limits<float>::infinity();
  x[4 * kQK_K + 4] = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < kQK_K; ++j) x[5 * kQK_K + j] = 1.0e-45f * static_cast<float>(j % 5 - 2);
  const auto bytes = static_cast<size_t>(row_bytes(TensorType::Q8_K, n));
  std::vector<uint8_t> expected(bytes), got(bytes, 0xAB);
  quantize_row_q8_K_ref(x.data(), reinterpret_cast<BlockQ8_K*>(expected.data()), n);
  quantize_row_q8_K(x.data(), reinterpret_cast<BlockQ8_K*>(got.data()), n);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const size_t off = static_cast<size_t>(b) * sizeof(BlockQ8_K);
    EXPECT_EQ(std::memcmp(got.data() + off, expected.data() + off, sizeof(BlockQ8_K)), 0)
        << "block " << b;
  }
}

}  // namespace
}  // namespace pareto::kernels
