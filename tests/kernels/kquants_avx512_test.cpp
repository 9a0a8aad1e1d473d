// The AVX-512 K-quant kernels (kquants_avx512.cpp) against the reference code they replace, with
// exact equality: the Q8_K quantizer byte for byte against quantize_row_q8_K_ref, and every
// output of the tiled matmul_kquant_rows bit for bit against dot_kquant_q8k (the portable lane
// loops of llama.cpp's AVX2 order) and dot_kquant_q8k_fast, and of matmul_kquant_block_rows against
// dot_kquant_q8k_block (llama.cpp's AMX order), on row and token counts that are not
// multiples of the tiles (2 rows, 64 tokens) and on several super-blocks. On a CPU without
// AVX-512 (or off x86) the block order has no kernel of its own: matmul_kquant_block_rows is a
// loop over dot_kquant_q8k_block, so comparing the two would prove nothing and that half of the
// test skips; matmul_kquant_rows falls back to the AVX2 or NEON dots (dot_kquant_q8k_fast), which
// the lane-loop comparison still checks.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernel_set.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"

namespace pareto::kernels {
namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

void expect_q8k_same(const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<BlockQ8_K> got(static_cast<size_t>(n / kQK_K));
  std::vector<BlockQ8_K> want(got.size());
  std::memset(got.data(), 0xAB, got.size() * sizeof(BlockQ8_K));
  std::memset(want.data(), 0xAB, want.size() * sizeof(BlockQ8_K));
  quantize_row_q8_K(x.data(), got.data(), n);
  quantize_row_q8_K_ref(x.data(), want.data(), n);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(BlockQ8_K)), 0);
}

TEST(KQuantsAvx512, ReportsSupport) {
  // Informational: which path the other tests exercise.
  RecordProperty("avx512", kquant_avx512_supported() ? "yes" : "no");
  SUCCEED();
}

TEST(KQuantsAvx512, Q8KQuantizeMatchesReferenceBytes) {
  for (float sigma : {1e-3f, 1.0f, 300.0f}) {
    expect_q8k_same(gaussian(4 * kQK_K, 7u + static_cast<uint32_t>(sigma), sigma));
  }
}

TEST(KQuantsAvx512, Q8KQuantizeEdgeCases) {
  std::vector<float> x(5 * kQK_K, 0.0f);
  // Block 0: all zero. Block 1: +-max ties, the first (negative) one must win.
  x[kQK_K + 40] = -3.0f;
  x[kQK_K + 45] = 3.0f;  // same 16-element group
  x[kQK_K + 200] = 3.0f;
  x[kQK_K + 7] = 1.5f;  // exactly half of max: rounds half to even
  for (int j = 0; j < 30; ++j) x[kQK_K + 100 + j] = 0.01f * static_cast<float>(j) - 0.1f;
  // Block 2: the max is the last element; values that round at .5 steps.
  for (int j = 0; j < kQK_K; ++j) x[2 * kQK_K + j] = static_cast<float>(j % 11) * 0.5f - 2.5f;
  x[3 * kQK_K - 1] = 127.0f;
  // Block 3: negative zeros and one tiny denormal-ish value.
  for (int j = 0; j < kQK_K; ++j) x[3 * kQK_K + j] = -0.0f;
  x[3 * kQK_K + 9] = 1e-38f;
  // Block 4: a NaN among ordinary values (skipped by the max search in both).
  const auto g = gaussian(kQK_K, 99u, 2.0f);
  std::copy(g.begin(), g.end(), x.begin() + 4 * kQK_K);
  x[4 * kQK_K + 17] = std::numeric_limits<float>::quiet_NaN();
  expect_q8k_same(x);
}

// Random K-quant weights: quantized gaussians, then every scale byte randomized so that all
// 6-bit scale / min values (and their packed high bits) occur.
std::vector<uint8_t> random_weights(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  const int64_t rb = row_bytes(type, cols);
  std::vector<uint8_t> w(static_cast<size_t>(rows * rb));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t r = 0; r < rows; ++r) {
    const auto f = gaussian(cols, seed * 31u + static_cast<uint32_t>(r), 0.05f);
    uint8_t* dst = w.data() + r * rb;
    quantize_row_kquant(type, f.data(), dst, cols);
    for (int64_t b = 0; b < cols / kQK_K; ++b) {
      if (type == TensorType::Q6_K) {
        auto* blk = reinterpret_cast<BlockQ6_K*>(dst) + b;
        for (auto& s : blk->scales) s = static_cast<int8_t>(byte(rng) - 128);
      } else {
        // Q4_K and Q5_K share the scales offset (after d, dmin).
        auto* blk = reinterpret_cast<BlockQ4_K*>(dst + b * traits(type).block_bytes);
        for (auto& s : blk->scales) s = static_cast<uint8_t>(byte(rng));
      }
    }
  }
  return w;
}

uint32_t bits(float v) {
  return std::bit_cast<uint32_t>(v);
}

void check_matmul(TensorType type, int64_t rows, int64_t n_tokens, int64_t blocks, uint32_t seed,
                  bool block_order) {
  SCOPED_TRACE(testing::Message() << type_name(type) << " rows=" << rows << " tokens=" << n_tokens
                                  << " blocks=" << blocks << (block_order ? " block order" : ""));
  const int64_t cols = blocks * kQK_K;
  const std::vector<uint8_t> wdata = random_weights(type, rows, cols, seed);
  WeightView w;
  w.type = type;
  w.data = wdata.data();
  w.rows = rows;
  w.cols = cols;
  const int64_t xrb = row_bytes(TensorType::Q8_K, cols);
  std::vector<uint8_t> xdata(static_cast<size_t>(n_tokens * xrb));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto f = gaussian(cols, seed + 1000u + static_cast<uint32_t>(t), 1.0f);
    quantize_row_q8_K_ref(f.data(), reinterpret_cast<BlockQ8_K*>(xdata.data() + t * xrb), cols);
  }
  PreparedActivations x;
  x.type = TensorType::Q8_K;
  x.data = xdata.data();
  x.row_bytes = xrb;
  x.n_tokens = n_tokens;
  // Rows [1, rows): row 0 must stay untouched (sentinel), offsets must be honoured.
  const float sentinel = -12345.0f;
  std::vector<float> y(static_cast<size_t>(n_tokens * rows), sentinel);
  const int64_t row_begin = rows > 1 ? 1 : 0;
  (block_order ? matmul_kquant_block_rows : matmul_kquant_rows)(w, x, row_begin, rows, y.data());
  int mismatches = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const float got = y[static_cast<size_t>(t * rows + r)];
      if (r < row_begin) {
        EXPECT_EQ(bits(got), bits(sentinel));
        continue;
      }
      const float want = block_order ? dot_kquant_q8k_block(type, w.row(r), x.row(t), cols)
                                     : dot_kquant_q8k(type, w.row(r), x.row(t), cols);
      if (!block_order) {
        const float want_fast = dot_kquant_q8k_fast(type, w.row(r), x.row(t), cols);
        ASSERT_EQ(bits(want), bits(want_fast));
      }
      if (bits(got) != bits(want) && ++mismatches <= 5) {
        ADD_FAILURE() << "row " << r << " token " << t << ": " << got << " vs " << want;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

void check_tiled_matmul(bool block_order) {
  uint32_t seed = 1;
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    for (int64_t rows : {1, 3, 6, 11}) {
      for (int64_t tokens : {1, 3, 5, 9}) {
        for (int64_t blocks : {1, 3}) check_matmul(type, rows, tokens, blocks, seed++, block_order);
      }
    }
    // More tokens than one 64-token tile, odd rows, several blocks.
    check_matmul(type, 5, 70, 2, seed++, block_order);
  }
}

TEST(KQuantsAvx512, TiledMatmulMatchesDotExactly) {
  check_tiled_matmul(false);
}

TEST(KQuantsAvx512, BlockOrderTiledMatmulMatchesDotExactly) {
  if (!kquant_avx512_supported()) {
    GTEST_SKIP() << "no AVX-512 here: matmul_kquant_block_rows is a loop over "
                    "dot_kquant_q8k_block, the function it would be compared with";
  }
  check_tiled_matmul(true);
}

}  // namespace
}  // namespace pareto::kernels
