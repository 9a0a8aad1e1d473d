// The SIMD Q8_0 / Q4_0 kernels (kernels_quant_simd.h) against the portable lane loops: every
// result must be the same float, bit for bit (the lane loops are llama.cpp's order, which the
// differential tests check against llama.cpp itself).
#include "kernels/kernels_quant_simd.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"
#include "kernels/kquants.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace quant_simd_test {
namespace {

// Values of mixed magnitudes per block (a few blocks all zero), so that amax, the fp16 scale and
// the rounding of x * id vary.
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

std::vector<uint8_t> quantized_activations(int64_t n, uint32_t seed) {
  const auto x = random_activations(n, seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(TensorType::Q8_0, n)));
  quantize_activations_q8_0(x.data(), reinterpret_cast<BlockQ8_0*>(bytes.data()), n);
  return bytes;
}

// Weight rows of random bytes with random finite fp16 scales: every bit pattern of the quants
// (Q8_0 -128 included) and of the nibbles occurs.
std::vector<uint8_t> random_weights(TensorType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const int64_t block_bytes = traits(type).block_bytes;
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(type, cols) * rows));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(byte(rng));
  for (size_t b = 0; b < bytes.size(); b += static_cast<size_t>(block_bytes)) {
    const uint16_t d = f32_to_f16(scale(rng));
    std::memcpy(bytes.data() + b, &d, 2);
  }
  return bytes;
}

TEST(QuantSimd, ActivationQuantizationIsBitIdentical) {
  for (int64_t n : {int64_t{32}, int64_t{96}, int64_t{2048}, int64_t{32 * 37}}) {
    auto x = random_activations(n, static_cast<uint32_t>(n));
    // Exact halves after scaling: 127/amax * x = k + 0.5 exercises round-half-even.
    x[0] = 127.0f;
    x[1] = 0.5f;
    x[2] = -1.5f;
    x[3] = 2.5f;
    const auto bytes = static_cast<size_t>(row_bytes(TensorType::Q8_0, n));
    std::vector<uint8_t> expected(bytes), got(bytes);
    quantize_activations_q8_0(x.data(), reinterpret_cast<BlockQ8_0*>(expected.data()), n);
    quantize_activations_q8_0_fast(x.data(), reinterpret_cast<BlockQ8_0*>(got.data()), n);
    EXPECT_EQ(got, expected) << "n=" << n;
  }
}

// F16 activations (prepare_activations): the vectorized conversion rounds as f32_to_f16 on every
// bit pattern class: random magnitudes from 2^-30 to 2^20 (F16 subnormals, normals, overflow to
// infinity), exact ties between two halves, signed zeros and infinities; a NaN stays a NaN.
TEST(QuantSimd, F16ActivationConversionIsBitIdentical) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-30.0f, 20.0f);
  std::uniform_int_distribution<int> sign(0, 1);
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{2048}, int64_t{4099}}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = (sign(rng) != 0 ? -1.0f : 1.0f) * std::exp2(exponent(rng));
    const float specials[] = {0.0f,
                              -0.0f,
                              INFINITY,
                              -INFINITY,
                              65504.0f,
                              65520.0f,
                              1.00048828125f /* tie: 1 + 2^-11 */,
                              1.00146484375f /* tie, odd */,
                              5.9604645e-8f /* 2^-24 */,
                              2.9802322e-8f /* 2^-25: tie to 0 */};
    for (size_t i = 0; i < std::size(specials) && i < x.size(); ++i) x[i] = specials[i];
    std::vector<uint16_t> got(x.size());
    f32_to_f16_row_fast(x.data(), got.data(), n);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(got[i], f32_to_f16(x[i])) << "n=" << n << " i=" << i << " x=" << x[i];
    }
  }
  const float nans[] = {NAN, -NAN, std::bit_cast<float>(0x7f800001u)};
  uint16_t got[3];
  f32_to_f16_row_fast(nans, got, 3);
  for (uint16_t h : got) EXPECT_TRUE(std::isnan(f16_to_f32(h))) << std::hex << h;
}

TEST(QuantSimd, RowDotsAreBitIdenticalToLaneLoops) {
  for (int64_t n_blocks : {1, 2, 3, 7, 64, 65, 344}) {
    const int64_t n = n_blocks * kQuantBlock;
    const auto seed = static_cast<uint32_t>(n_blocks);
    const auto x = quantized_activations(n, seed);
    const auto w8 = random_weights(TensorType::Q8_0, 1, n, seed + 100);
    const auto w4 = random_weights(TensorType::Q4_0, 1, n, seed + 200);
    const float q8 = dot_q8_0_lanes_ref(w8.data(), x.data(), n);
    const float q4 = dot_q4_0_lanes_ref(w4.data(), x.data(), n);
    const float q4r = dot_q4_0_repacked_ref(w4.data(), x.data(), n);
    EXPECT_EQ(dot_q8_0_lanes_fast(w8.data(), x.data(), n), q8) << n_blocks;
    EXPECT_EQ(dot_q4_0_lanes_fast(w4.data(), x.data(), n), q4) << n_blocks;
    EXPECT_EQ(dot_q4_0_repacked_fast(w4.data(), x.data(), n), q4r) << n_blocks;
    const float q8b = dot_q8_0_block_ref(w8.data(), x.data(), n);
    EXPECT_EQ(dot_q8_0_block_fast(w8.data(), x.data(), n), q8b) << n_blocks;
    EXPECT_NEAR(q8, q8b, 1e-4 * (std::fabs(q8) + 1.0f));
    // The two Q4_0 orders are different roundings of the same sum: close, and not trivially 0.
    EXPECT_NEAR(q4, q4r, 1e-4 * (std::fabs(q4) + 1.0f));
  }
}

PreparedActivations prepared(const std::vector<uint8_t>& bytes, TensorType type, int64_t cols,
                             int64_t n_tokens) {
  return {type, bytes.data(), row_bytes(type, cols), n_tokens};
}

// Both Q4_0 orders (rows % 8 == 0 selects the repacked one) and Q8_0, for token counts around
// the token tile, over a row range that starts inside the matrix.
TEST(QuantSimd, MatmulRowsAreBitIdenticalToLaneLoops) {
  struct Case {
    TensorType type;
    int64_t rows;
    bool repacked;
  };
  const int64_t cols = 32 * 9;
  // Q8_0 with `repacked`: the block order (the same formula).
  for (const Case c : {Case{TensorType::Q8_0, 13, false}, Case{TensorType::Q4_0, 13, false},
                       Case{TensorType::Q4_0, 24, true}, Case{TensorType::Q4_0, 40, true},
                       Case{TensorType::Q8_0, 13, true}, Case{TensorType::Q8_0, 40, true}}) {
    const auto wbytes = random_weights(c.type, c.rows, cols, 7);
    const WeightView w{c.type, wbytes.data(), c.rows, cols};
    for (int64_t n_tokens : {1, 3, 4, 5, 9}) {
      const auto xbytes = quantized_activations(cols * n_tokens, 40 + n_tokens);
      const PreparedActivations x = prepared(xbytes, TensorType::Q8_0, cols, n_tokens);
      std::vector<float> got(static_cast<size_t>(n_tokens * c.rows), -1.0f);
      // Starts inside the first group of 8 rows and (40 rows) ends inside the last one: partial
      // groups at both ends, whole groups of 8 between.
      const int64_t row_begin = 2;
      const int64_t row_end = c.rows == 40 ? 37 : c.rows;
      if (c.type == TensorType::Q8_0 && c.repacked) {
        matmul_q8_0_block_rows_fast(w, x, row_begin, row_end, got.data());
      } else if (c.type == TensorType::Q8_0) {
        matmul_q8_0_rows_fast(w, x, row_begin, row_end, got.data());
      } else {
        matmul_q4_0_rows_fast(w, x, row_begin, row_end, got.data());
      }
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < c.rows; ++r) {
          const float out = got[t * c.rows + r];
          if (r < row_begin || r >= row_end) {
            EXPECT_EQ(out, -1.0f) << "row outside the range was written";
            continue;
          }
          float expected = 0.0f;
          if (c.type == TensorType::Q8_0 && c.repacked) {
            expected = dot_q8_0_block_ref(w.row(r), x.row(t), cols);
          } else if (c.type == TensorType::Q8_0) {
            expected = dot_q8_0_lanes_ref(w.row(r), x.row(t), cols);
          } else if (c.repacked) {
            expected = dot_q4_0_repacked_ref(w.row(r), x.row(t), cols);
          } else {
            expected = dot_q4_0_lanes_ref(w.row(r), x.row(t), cols);
          }
          EXPECT_EQ(out, expected)
              << type_name(c.type) << " rows=" << c.rows << " t=" << t << " r=" << r;
        }
      }
    }
  }
}

// K-quant weights quantized from real values, against Q8_K activations of 1 and 5 tokens.
struct KQuantCase {
  std::vector<uint8_t> wbytes;
  std::vector<uint8_t> xbytes;
  WeightView w;
  PreparedActivations x;
};

KQuantCase kquant_case(TensorType type, int64_t rows, int64_t cols, int64_t n_tokens) {
  KQuantCase c;
  const auto wf = random_activations(rows * cols, 3);
  c.wbytes.resize(static_cast<size_t>(row_bytes(type, cols) * rows));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, wf.data() + r * cols, c.wbytes.data() + r * row_bytes(type, cols), cols);
  }
  c.w = WeightView{type, c.wbytes.data(), rows, cols};
  const auto xf = random_activations(cols * n_tokens, 9);
  c.xbytes.resize(static_cast<size_t>(row_bytes(TensorType::Q8_K, cols) * n_tokens));
  quantize_row(TensorType::Q8_K, xf.data(), c.xbytes.data(), cols * n_tokens);
  c.x = prepared(c.xbytes, TensorType::Q8_K, cols, n_tokens);
  return c;
}

TEST(QuantSimd, KQuantMatmulRowsEqualRowDots) {
  const int64_t cols = 2 * kQK_K;
  const int64_t rows = 6;
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    for (int64_t n_tokens : {1, 5}) {
      const KQuantCase c = kquant_case(type, rows, cols, n_tokens);
      std::vector<float> fast(static_cast<size_t>(rows * n_tokens));
      matmul_kquant_rows(c.w, c.x, 0, rows, fast.data());
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          EXPECT_EQ(fast[t * rows + r], dot_kquant_q8k(type, c.w.row(r), c.x.row(t), cols));
        }
      }
    }
  }
}

// The scalar reference (matmul_kquant_rows_scalar: one float accumulator, elements in order) is a
// loop over dot_kquant_q8k_scalar, so it is checked against independent arithmetic instead: the
// dot of the dequantized rows in double. They differ only by float rounding, bounded by
// n * 2^-23 * sum |w_i x_i| (one rounding per product and per addition, plus the scales).
TEST(QuantSimd, ScalarKQuantRowsMatchTheDequantizedDotInDouble) {
  const int64_t cols = 2 * kQK_K;
  const int64_t rows = 6;
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    const int64_t n_tokens = 5;
    const KQuantCase c = kquant_case(type, rows, cols, n_tokens);
    std::vector<float> scalar(static_cast<size_t>(rows * n_tokens));
    matmul_kquant_rows_scalar(c.w, c.x, 0, rows, scalar.data());
    std::vector<float> wf(static_cast<size_t>(cols));
    std::vector<float> xf(static_cast<size_t>(cols));
    for (int64_t t = 0; t < n_tokens; ++t) {
      dequantize_row_q8_K(reinterpret_cast<const BlockQ8_K*>(c.x.row(t)), xf.data(), cols);
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row_kquant(type, c.w.row(r), wf.data(), cols);
        double exact = 0;
        double magnitude = 0;
        for (int64_t i = 0; i < cols; ++i) {
          exact += static_cast<double>(wf[i]) * xf[i];
          magnitude += std::fabs(static_cast<double>(wf[i]) * xf[i]);
        }
        const double bound = static_cast<double>(cols) * std::ldexp(1.0, -23) * magnitude;
        EXPECT_NEAR(scalar[t * rows + r], exact, bound)
            << type_name(type) << " row " << r << " token " << t;
        EXPECT_NE(exact, 0.0);
      }
    }
  }
}

// Random bytes (every quant, scale and min bit pattern) with random fp16 super-block scales,
// against Q8_K rows of real activations.
TEST(QuantSimd, KQuantDotsAreBitIdenticalToDefaultOrder) {
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    for (int64_t n_blocks : {1, 2, 5, 8}) {
      const int64_t n = n_blocks * kQK_K;
      const auto seed = static_cast<uint32_t>(n_blocks * 31 + static_cast<int>(type));
      std::mt19937 rng(seed);
      std::uniform_int_distribution<int> byte(0, 255);
      std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
      std::vector<uint8_t> w(static_cast<size_t>(row_bytes(type, n)));
      for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
      const int64_t block_bytes = traits(type).block_bytes;
      // fp16 fields: d and dmin first (Q4_K, Q5_K), d last (Q6_K).
      for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* blk = w.data() + b * block_bytes;
        const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
        if (type == TensorType::Q6_K) {
          std::memcpy(blk + block_bytes - 2, &d, 2);
        } else {
          std::memcpy(blk, &d, 2);
          std::memcpy(blk + 2, &dmin, 2);
        }
      }
      const auto xf = random_activations(n, seed + 1);
      std::vector<uint8_t> x(static_cast<size_t>(row_bytes(TensorType::Q8_K, n)));
      quantize_row(TensorType::Q8_K, xf.data(), x.data(), n);
      EXPECT_EQ(dot_kquant_q8k_fast(type, w.data(), x.data(), n),
                dot_kquant_q8k(type, w.data(), x.data(), n))
          << type_name(type) << " blocks=" << n_blocks;
    }
  }
}

}  // namespace
}  // namespace quant_simd_test
}  // namespace pareto::kernels
