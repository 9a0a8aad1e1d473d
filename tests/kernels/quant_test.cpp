// Block layouts and rounding rules of Q8_0 / Q4_0 (weights: ggml's reference quantizers;
// activations: the x86 CPU backend's quantize_row_q8_0).
#include "kernels/quant.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"

namespace pareto::kernels {
namespace quant_test {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(Quant, Q8_0ByteLayoutIsScaleThenInt8s) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16);  // amax 16 -> d = 16/127
  std::vector<uint8_t> bytes(34);
  quantize_row(TensorType::Q8_0, x.data(), bytes.data(), 32);
  uint16_t d;
  std::memcpy(&d, bytes.data(), 2);
  EXPECT_EQ(d, f32_to_f16(16.0f / 127.0f));
  EXPECT_EQ(static_cast<int8_t>(bytes[2]), -127);      // element 0 = -16
  EXPECT_EQ(static_cast<int8_t>(bytes[2 + 16]), 0);    // element 16 = 0
  EXPECT_EQ(static_cast<int8_t>(bytes[2 + 31]), 119);  // 15 * 127/16 = 119.06
}

TEST(Quant, Q4_0NibbleLayoutLowIsFirstHalf) {
  std::vector<uint8_t> block(18, 0);
  const uint16_t d = f32_to_f16(0.5f);
  std::memcpy(block.data(), &d, 2);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>((j & 0xf) | ((15 - j) << 4));
  std::vector<float> y(32);
  dequantize_row(TensorType::Q4_0, block.data(), y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f) << j;
  }
}

TEST(Quant, Q8_0RoundTripErrorWithinHalfStep) {
  const int64_t n = 32 * 7;
  const auto x = random_values(n, 1, 3.0f);
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(TensorType::Q8_0, n)));
  quantize_row(TensorType::Q8_0, x.data(), bytes.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(TensorType::Q8_0, bytes.data(), y.data(), n);
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(bytes.data());
  for (int64_t b = 0; b < n / 32; ++b) {
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double{x[b * 32 + j]}));
    const double d = f16_to_f32(blocks[b].d);
    EXPECT_NEAR(d, amax / 127, amax / 127 * 1e-3);  // fp16 rounding of the scale
    for (int j = 0; j < 32; ++j) {
      const double exact = x[b * 32 + j] / (amax / 127);  // the unrounded quantized value
      EXPECT_LE(std::fabs(blocks[b].qs[j] - exact), 0.5 + 1e-4) << b << "," << j;
      // Stored q times the stored (fp16) d is the dequantized value.
      EXPECT_EQ(y[b * 32 + j], static_cast<float>(blocks[b].qs[j] * static_cast<float>(d)));
    }
  }
}

TEST(Quant, Q4_0RoundTripErrorWithinHalfStep) {
  const int64_t n = 32 * 9;
  const auto x = random_values(n, 2, 0.7f);
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(TensorType::Q4_0, n)));
  quantize_row(TensorType::Q4_0, x.data(), bytes.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(TensorType::Q4_0, bytes.data(), y.data(), n);
  const auto* blocks = reinterpret_cast<const BlockQ4_0*>(bytes.data());
  for (int64_t b = 0; b < n / 32; ++b) {
    double max = 0;  // signed value of largest magnitude
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(double{x[b * 32 + j]}) > std::fabs(max)) max = x[b * 32 + j];
    }
    const double d_exact = max / -8;
    const double d = f16_to_f32(blocks[b].d);
    EXPECT_NEAR(d, d_exact, std::fabs(d_exact) * 1e-3);
    for (int j = 0; j < 32; ++j) {
      const double q_exact = x[b * 32 + j] / d_exact + 8;  // in [0, 16]
      const int nibble = j < 16 ? (blocks[b].qs[j] & 0xf) : (blocks[b].qs[j - 16] >> 4);
      EXPECT_LE(std::fabs(nibble - std::min(15.0, q_exact)), 0.5 + 1e-4) << b << "," << j;
      EXPECT_EQ(y[b * 32 + j], static_cast<float>(nibble - 8) * static_cast<float>(d));
    }
    // The largest-magnitude element maps to nibble 0 (value -8 * d = max).
  }
}

TEST(Quant, ZeroBlocksQuantizeToZero) {
  std::vector<float> x(64, 0.0f);
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, 64)));
    quantize_row(t, x.data(), bytes.data(), 64);
    std::vector<float> y(64, 1.0f);
    dequantize_row(t, bytes.data(), y.data(), 64);
    for (float v : y) EXPECT_EQ(v, 0.0f);
  }
}

// Weights round half away from zero (roundf); activations round half to even with id = 127/amax.
TEST(Quant, WeightAndActivationTieRounding) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;  // amax 127: d = 1, both scales exactly 1
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  BlockQ8_0 w, a;
  quantize_row_q8_0_ref(x.data(), &w, 32);
  quantize_activations_q8_0(x.data(), &a, 32);
  EXPECT_EQ(w.qs[1], 3);
  EXPECT_EQ(w.qs[2], 4);
  EXPECT_EQ(w.qs[3], -3);
  EXPECT_EQ(a.qs[1], 2);
  EXPECT_EQ(a.qs[2], 4);
  EXPECT_EQ(a.qs[3], -2);
  EXPECT_EQ(w.qs[0], 127);
  EXPECT_EQ(a.qs[0], 127);
  EXPECT_EQ(a.d, f32_to_f16(1.0f));
}

TEST(Quant, F16AndBf16RowsRoundTrip) {
  const auto x = random_values(45, 3);
  for (TensorType t : {TensorType::F16, TensorType::BF16, TensorType::F32}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, 45)));
    quantize_row(t, x.data(), bytes.data(), 45);
    std::vector<float> y(45);
    dequantize_row(t, bytes.data(), y.data(), 45);
    const double rel = t == TensorType::F16 ? 1.0 / 2048 : t == TensorType::BF16 ? 1.0 / 256 : 0;
    for (int i = 0; i < 45; ++i) EXPECT_LE(std::fabs(y[i] - x[i]), std::fabs(x[i]) * rel) << i;
  }
}

}  // namespace
}  // namespace quant_test
}  // namespace pareto::kernels
