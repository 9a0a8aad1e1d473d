// K-quant blocks (Q4_K, Q5_K, Q6_K, Q8_K): layouts decoded independently from ggml's layout
// description, quantizer error, and the K-quant x Q8_K dot products (all three float orders).
#include "kernels/kquants.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "base/half.h"

namespace pareto::kernels {
namespace kquants_test {
namespace {

constexpr double kFloatEps = 1.0 / (1 << 24);  // unit roundoff of float

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Packs 6-bit scale/min of sub-block j into the 12 scale bytes, written from the layout
// description (not from the library's unpacker): j < 4 -> low 6 bits of bytes j (scale) and
// j + 4 (min); j >= 4 -> low 4 bits in byte j + 4 (scale low nibble, min high nibble), high 2 bits
// in bits 6-7 of bytes j - 4 (scale) and j (min).
void pack_scale_min(uint8_t* bytes, int j, int sc, int m) {
  if (j < 4) {
    bytes[j] = static_cast<uint8_t>((bytes[j] & 0xC0) | sc);
    bytes[j + 4] = static_cast<uint8_t>((bytes[j + 4] & 0xC0) | m);
  } else {
    bytes[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    bytes[j - 4] = static_cast<uint8_t>((bytes[j - 4] & 0x3F) | ((sc >> 4) << 6));
    bytes[j] = static_cast<uint8_t>((bytes[j] & 0x3F) | ((m >> 4) << 6));
  }
}

// Hand-built Q4_K/Q5_K content: d = 0.5, dmin = 0.25, sub-block j scale 1 + 7j, min 62 - 5j;
// element p has quant (p * 7 + 3) mod levels. All products are exact in float.
constexpr int sub_scale(int j) {
  return 1 + 7 * j;
}
constexpr int sub_min(int j) {
  return 62 - 5 * j;
}
int test_quant(int p, int levels) {
  return (p * 7 + 3) % levels;
}

TEST(KQuants, BlockSizesMatchGgufTraits) {
  EXPECT_EQ(sizeof(BlockQ4_K), static_cast<size_t>(traits(TensorType::Q4_K).block_bytes));
  EXPECT_EQ(sizeof(BlockQ5_K), static_cast<size_t>(traits(TensorType::Q5_K).block_bytes));
  EXPECT_EQ(sizeof(BlockQ6_K), static_cast<size_t>(traits(TensorType::Q6_K).block_bytes));
  EXPECT_EQ(sizeof(BlockQ8_K), static_cast<size_t>(traits(TensorType::Q8_K).block_bytes));
  for (auto t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K}) {
    EXPECT_EQ(traits(t).block_size, kQK_K);
  }
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);  // ql[128], qh[64], scales[16], then d
  EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);  // d, dmin, scales[12], qh[32], then qs
}

TEST(KQuants, ScaleMinUnpackMatchesLayout) {
  uint8_t bytes[12] = {};
  for (int j = 0; j < 8; ++j) pack_scale_min(bytes, j, sub_scale(j), sub_min(j));
  // Spot values: sub-block 5 has scale 36 = 0b10'0100 -> low nibble 4 in byte 9, bits 6-7 of
  // byte 1 = 0b10; min 37 = 0b10'0101 -> high nibble 5 of byte 9, bits 6-7 of byte 5 = 0b10.
  EXPECT_EQ(bytes[9], 0x54);
  EXPECT_EQ(bytes[1] >> 6, 2);
  EXPECT_EQ(bytes[5] >> 6, 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc = 0, m = 0;
    kquant_scale_min(bytes, j, &sc, &m);
    EXPECT_EQ(sc, sub_scale(j)) << j;
    EXPECT_EQ(m, sub_min(j)) << j;
  }
}

TEST(KQuants, DequantizeQ4KHandBuiltBlock) {
  BlockQ4_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  for (int j = 0; j < 8; ++j) pack_scale_min(b.scales, j, sub_scale(j), sub_min(j));
  for (int p = 0; p < kQK_K; ++p) {  // chunk of 64: byte 32c + (p % 32), low nibble first half
    const int c = p / 64, within = p % 64;
    uint8_t& byte = b.qs[32 * c + within % 32];
    byte = static_cast<uint8_t>(within < 32 ? ((byte & 0xF0) | test_quant(p, 16))
                                            : ((byte & 0x0F) | (test_quant(p, 16) << 4)));
  }
  std::vector<float> y(kQK_K);
  dequantize_row_kquant(TensorType::Q4_K, &b, y.data(), kQK_K);
  for (int p = 0; p < kQK_K; ++p) {
    const int j = p / 32;
    EXPECT_EQ(y[p], 0.5f * sub_scale(j) * test_quant(p, 16) - 0.25f * sub_min(j)) << p;
  }
  // Element 70: sub-block 2 (scale 15, min 52), quant (490 + 3) % 16 = 13.
  EXPECT_EQ(y[70], 0.5f * 15 * 13 - 0.25f * 52);
}

TEST(KQuants, DequantizeQ5KHandBuiltBlock) {
  BlockQ5_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  for (int j = 0; j < 8; ++j) pack_scale_min(b.scales, j, sub_scale(j), sub_min(j));
  for (int p = 0; p < kQK_K; ++p) {
    const int q = test_quant(p, 32);
    const int c = p / 64, within = p % 64, l = within % 32;
    uint8_t& byte = b.qs[32 * c + l];
    byte = static_cast<uint8_t>(within < 32 ? ((byte & 0xF0) | (q & 0xF))
                                            : ((byte & 0x0F) | ((q & 0xF) << 4)));
    if (q & 16) b.qh[l] |= static_cast<uint8_t>(1 << (2 * c + (within < 32 ? 0 : 1)));
  }
  std::vector<float> y(kQK_K);
  dequantize_row_kquant(TensorType::Q5_K, &b, y.data(), kQK_K);
  for (int p = 0; p < kQK_K; ++p) {
    const int j = p / 32;
    EXPECT_EQ(y[p], 0.5f * sub_scale(j) * test_quant(p, 32) - 0.25f * sub_min(j)) << p;
  }
  // Element 230: chunk 3, second half (qh bit 7), sub-block 7 (scale 50, min 27), quant
  // (1610 + 3) % 32 = 13 (no high bit); element 4: quant 31 uses qh[4] bit 0.
  EXPECT_EQ(y[230], 0.5f * 50 * 13 - 0.25f * 27);
  EXPECT_EQ(y[4], 0.5f * 1 * 31 - 0.25f * 62);
  EXPECT_EQ(b.qh[4] & 1, 1);
}

TEST(KQuants, DequantizeQ6KHandBuiltBlock) {
  BlockQ6_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = f32_to_f16(0.25f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j % 2 ? -3 * j : 8 * j - 128);
  for (int p = 0; p < kQK_K; ++p) {
    const int q = test_quant(p, 64);
    const int h = p / 128, within = p % 128, quarter = within / 32, l = within % 32;
    // Quarters 0/1 use low nibbles of ql[64h + l] / ql[64h + 32 + l], quarters 2/3 the high
    // nibbles; the top 2 bits go to bits 2*quarter of qh[32h + l].
    uint8_t& lo = b.ql[64 * h + (quarter % 2) * 32 + l];
    lo = static_cast<uint8_t>(quarter < 2 ? ((lo & 0xF0) | (q & 0xF))
                                          : ((lo & 0x0F) | ((q & 0xF) << 4)));
    b.qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
  }
  std::vector<float> y(kQK_K);
  dequantize_row_kquant(TensorType::Q6_K, &b, y.data(), kQK_K);
  for (int p = 0; p < kQK_K; ++p) {
    EXPECT_EQ(y[p], 0.25f * b.scales[p / 16] * (test_quant(p, 64) - 32)) << p;
  }
  // Element 0: scale -128, quant 3 -> 0.25 * -128 * -29; element 200: scale index 12 -> -32,
  // quant (1400 + 3) % 64 = 59 -> 0.25 * -32 * 27.
  EXPECT_EQ(y[0], 928.0f);
  EXPECT_EQ(y[200], -216.0f);
}

TEST(KQuants, Q8KQuantizeRoundsHalfToEvenAndSumsGroups) {
  // max = -127 makes iscale = -127 / max = 1, so q = round-half-even(x) and d = 1.
  std::vector<float> x(kQK_K, 0.0f);
  x[0] = -127.0f;
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  x[17] = 100.4f;
  x[18] = 0.5f;
  BlockQ8_K q;
  quantize_row_q8_K(x.data(), &q, kQK_K);
  EXPECT_EQ(q.d, 1.0f);
  EXPECT_EQ(q.qs[0], -127);
  EXPECT_EQ(q.qs[1], 2);
  EXPECT_EQ(q.qs[2], 4);
  EXPECT_EQ(q.qs[3], -2);
  EXPECT_EQ(q.qs[17], 100);
  EXPECT_EQ(q.qs[18], 0);
  EXPECT_EQ(q.bsums[0], -127 + 2 + 4 - 2);
  EXPECT_EQ(q.bsums[1], 100);
  // Largest magnitude positive: d is negative (d = -max / 127) and that element maps to -127.
  const auto g = gaussian(kQK_K, 3);
  float amax = 0, max = 0;
  for (float v : g) {
    if (std::fabs(v) > amax) amax = std::fabs(v), max = v;
  }
  quantize_row_q8_K(g.data(), &q, kQK_K);
  EXPECT_FLOAT_EQ(q.d, 1.0f / (-127.f / max));
  for (int i = 0; i < kQK_K; ++i) {
    EXPECT_LE(std::fabs(q.qs[i] * q.d - g[i]), std::fabs(q.d) * 0.5f * (1 + 1e-5f)) << i;
  }
}

TEST(KQuants, Q8KAllZeroBlock) {
  std::vector<float> x(kQK_K, 0.0f);
  BlockQ8_K q;
  std::memset(&q, 0x5A, sizeof(q));
  quantize_row_q8_K(x.data(), &q, kQK_K);
  EXPECT_EQ(q.d, 0.0f);
  for (int i = 0; i < kQK_K; ++i) EXPECT_EQ(q.qs[i], 0);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(q.bsums[g], 0);
}

struct TypeCase {
  TensorType type;
  double max_rel_rms;  // bound on RMS(error) / RMS(x) for Gaussian rows
};

// Bounds: uniform quantization noise is step / sqrt(12). Q4_K/Q5_K: a Gaussian sub-block of 32
// spans about 4.1 sigma over 15 / 31 steps -> 0.079 / 0.038. Q6_K: a signed sub-block of 16 has
// its largest magnitude near 2.0 sigma, mapped to 32 steps -> 0.018. The bounds are these
// estimates plus 15% for the 6/8-bit rounding of the sub-block scales and sampling spread over a
// few blocks (measured: 0.072-0.073, 0.035-0.037, 0.0165-0.018).
const TypeCase kTypes[] = {
    {TensorType::Q4_K, 0.091}, {TensorType::Q5_K, 0.044}, {TensorType::Q6_K, 0.021}};

std::vector<uint8_t> quantize(TensorType t, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(t, n)));
  quantize_row_kquant(t, x.data(), bytes.data(), n);
  return bytes;
}

std::vector<float> dequantize(TensorType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row_kquant(t, bytes.data(), y.data(), n);
  return y;
}

TEST(KQuants, QuantizeRoundTripRelativeRmsBelowBound) {
  for (const auto& tc : kTypes) {
    for (int64_t n : {256, 512, 2816}) {
      const auto x = gaussian(n, static_cast<uint32_t>(n), 0.02f);
      const auto y = dequantize(tc.type, quantize(tc.type, x), n);
      double err2 = 0, ref2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        err2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        ref2 += double(x[i]) * x[i];
      }
      EXPECT_LT(std::sqrt(err2 / ref2), tc.max_rel_rms) << type_name(tc.type) << " n=" << n;
    }
  }
}

TEST(KQuants, QuantizeAllZerosGivesZeros) {
  for (const auto& tc : kTypes) {
    const std::vector<float> x(512, 0.0f);
    const auto y = dequantize(tc.type, quantize(tc.type, x), 512);
    for (float v : y) EXPECT_EQ(v, 0.0f) << type_name(tc.type);
  }
}

TEST(KQuants, QuantizeExtremeValuesStaysFiniteAndBounded) {
  // Large magnitudes (still inside fp16 scale range), an isolated outlier, and sub-blocks of
  // constant values of either sign.
  std::vector<float> x = gaussian(768, 11, 1000.0f);
  x[5] = 3.0e4f;
  x[300] = -3.0e4f;
  for (int i = 512; i < 544; ++i) x[i] = 7.5f;
  for (int i = 544; i < 576; ++i) x[i] = -7.5f;
  for (const auto& tc : kTypes) {
    const auto y = dequantize(tc.type, quantize(tc.type, x), 768);
    for (int b = 0; b < 3; ++b) {
      float amax = 0;
      for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[256 * b + i]));
      for (int i = 0; i < 256; ++i) {
        const int k = 256 * b + i;
        ASSERT_TRUE(std::isfinite(y[k])) << type_name(tc.type) << " " << k;
        // No element can be off by more than its block's largest magnitude.
        EXPECT_LE(std::fabs(y[k] - x[k]), amax) << type_name(tc.type) << " " << k;
      }
    }
    EXPECT_NEAR(y[5], 3.0e4f, 3.0e4f * 0.05f) << type_name(tc.type);
    EXPECT_NEAR(y[300], -3.0e4f, 3.0e4f * 0.05f) << type_name(tc.type);
  }
}

// Sum over elements of the magnitudes of the float terms the dot accumulates: the scale part
// |d * sc * q * x8| and (Q4_K/Q5_K) the min part |dmin * m * x8|, recovered by dequantizing
// with the quants zeroed (which leaves -dmin * m).
double term_magnitude(TensorType t, std::vector<uint8_t> bytes, const std::vector<float>& w,
                      const std::vector<float>& x8) {
  const auto n = static_cast<int64_t>(w.size());
  std::vector<float> mins(static_cast<size_t>(n), 0.0f);
  if (t != TensorType::Q6_K) {
    auto* blocks = bytes.data();
    const size_t bb = static_cast<size_t>(traits(t).block_bytes);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      uint8_t* blk = blocks + b * bb;
      // Everything after d, dmin and scales (16 bytes) is quant bits.
      std::memset(blk + 16, 0, bb - 16);
    }
    mins = dequantize(t, bytes, n);
  }
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += std::fabs((double(w[i]) - mins[i]) * x8[i]) + std::fabs(double(mins[i]) * x8[i]);
  }
  return s;
}

TEST(KQuants, DotMatchesDoubleDotOfDequantizedRows) {
  for (const auto& tc : kTypes) {
    for (int64_t n : {256, 512, 2816}) {
      const auto wf = gaussian(n, static_cast<uint32_t>(7 * n), 0.05f);
      const auto xf = gaussian(n, static_cast<uint32_t>(9 * n), 2.0f);
      const auto wq = quantize(tc.type, wf);
      std::vector<BlockQ8_K> xq(static_cast<size_t>(n / kQK_K));
      quantize_row_q8_K(xf.data(), xq.data(), n);
      const auto w = dequantize(tc.type, wq, n);
      std::vector<float> x8(static_cast<size_t>(n));
      dequantize_row_q8_K(xq.data(), x8.data(), n);

      double exact = 0, against_f32 = 0, q8_bound = 0;
      for (int64_t i = 0; i < n; ++i) {
        exact += double(w[i]) * x8[i];
        against_f32 += double(w[i]) * xf[i];
        q8_bound += std::fabs(double(w[i])) * std::fabs(xq[i / kQK_K].d) * 0.5;
      }
      // The integer sums are exact; each block adds a few float roundings (d = fp16 * d8, the
      // lane products, the accumulation over blocks and lanes).
      const double nb = double(n / kQK_K);
      const double float_bound = (nb + 16) * 4 * kFloatEps * term_magnitude(tc.type, wq, w, x8);
      const float fast = dot_kquant_q8k(tc.type, wq.data(), xq.data(), n);
      const float scalar = dot_kquant_q8k_scalar(tc.type, wq.data(), xq.data(), n);
      const float block = dot_kquant_q8k_block(tc.type, wq.data(), xq.data(), n);
      EXPECT_NEAR(fast, exact, float_bound) << type_name(tc.type) << " n=" << n;
      EXPECT_NEAR(scalar, exact, float_bound) << type_name(tc.type) << " n=" << n;
      EXPECT_NEAR(block, exact, float_bound) << type_name(tc.type) << " n=" << n;
      // Against the unquantized activations: off by at most the q8 rounding (half a step each).
      EXPECT_NEAR(fast, against_f32, q8_bound + float_bound) << type_name(tc.type) << " n=" << n;
      // Fast vs scalar: not bit-exact (different float order by design), within float rounding.
      EXPECT_NEAR(fast, scalar, float_bound) << type_name(tc.type) << " n=" << n;
    }
  }
}

// With d = 1 for weights and activations and small integers, every float op is exact, so both
// orders must return the exact integer dot product: catches any lane or index mix-up.
TEST(KQuants, DotIsExactForIntegerBlocks) {
  const int64_t n = 512;
  std::vector<float> xf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) xf[i] = static_cast<float>((i * 37) % 15 - 7);
  xf[0] = -127.0f;
  xf[256] = -127.0f;  // each block's largest magnitude is -127: iscale = 1, d = 1
  std::vector<BlockQ8_K> xq(2);
  quantize_row_q8_K(xf.data(), xq.data(), n);
  ASSERT_EQ(xq[0].d, 1.0f);
  ASSERT_EQ(xq[1].d, 1.0f);

  for (const auto& tc : kTypes) {
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(tc.type, n)));
    std::mt19937 rng(5);
    for (auto& byte : bytes) byte = static_cast<uint8_t>(rng());
    // Set d (and dmin) to 1.0.
    const size_t bb = static_cast<size_t>(traits(tc.type).block_bytes);
    for (int b = 0; b < 2; ++b) {
      uint8_t* blk = bytes.data() + b * bb;
      const uint16_t one = f32_to_f16(1.0f);
      if (tc.type == TensorType::Q6_K) {
        std::memcpy(blk + 208, &one, 2);
      } else {
        std::memcpy(blk, &one, 2);
        std::memcpy(blk + 2, &one, 2);
      }
    }
    const auto w = dequantize(tc.type, bytes, n);
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += double(w[i]) * xf[i];
    ASSERT_LT(std::fabs(exact), double(1 << 24));
    EXPECT_EQ(dot_kquant_q8k(tc.type, bytes.data(), xq.data(), n), float(exact))
        << type_name(tc.type);
    EXPECT_EQ(dot_kquant_q8k_scalar(tc.type, bytes.data(), xq.data(), n), float(exact))
        << type_name(tc.type);
    EXPECT_EQ(dot_kquant_q8k_block(tc.type, bytes.data(), xq.data(), n), float(exact))
        << type_name(tc.type);
  }
}

// A copy of `bytes` with every block's d (and dmin, for Q4_K / Q5_K) set to the given values.
std::vector<uint8_t> with_scales(TensorType t, std::vector<uint8_t> bytes, float d, float dmin) {
  const size_t bb = static_cast<size_t>(traits(t).block_bytes);
  const uint16_t hd = f32_to_f16(d), hm = f32_to_f16(dmin);
  for (size_t off = 0; off < bytes.size(); off += bb) {
    if (t == TensorType::Q6_K) {
      std::memcpy(bytes.data() + off + 208, &hd, 2);
    } else {
      std::memcpy(bytes.data() + off, &hd, 2);
      std::memcpy(bytes.data() + off + 2, &hm, 2);
    }
  }
  return bytes;
}

// llama.cpp's AMX order, rebuilt from dequantized values: with d = 1, dmin = 0 a block dequantizes
// to the integers scale x q (Q6_K: scale x (q - 32)), with d = 0, dmin = 1 to -min; so S and M are
// exact integer dots, and the float steps are the documented two fmas per super-block.
TEST(KQuants, BlockOrderIsTwoFmasPerSuperBlockOverExactIntegerSums) {
  const int64_t n = 1024;
  int differs_from_avx2_order = 0;
  for (const auto& tc : kTypes) {
    for (uint32_t seed = 1; seed <= 8; ++seed) {
      const auto wq = quantize(tc.type, gaussian(n, 31 * seed, 0.05f));
      std::vector<BlockQ8_K> xq(static_cast<size_t>(n / kQK_K));
      quantize_row_q8_K(gaussian(n, 37 * seed, 2.0f).data(), xq.data(), n);
      const auto scaled = dequantize(tc.type, with_scales(tc.type, wq, 1.0f, 0.0f), n);
      const auto mins = dequantize(tc.type, with_scales(tc.type, wq, 0.0f, 1.0f), n);
      const size_t bb = static_cast<size_t>(traits(tc.type).block_bytes);
      float acc = 0.0f;
      for (int64_t b = 0; b < n / kQK_K; ++b) {
        int64_t s = 0, m = 0;
        for (int64_t e = b * kQK_K; e < (b + 1) * kQK_K; ++e) {
          const int64_t qa = xq[static_cast<size_t>(b)].qs[e - b * kQK_K];
          s += static_cast<int64_t>(scaled[e]) * qa;
          m -= static_cast<int64_t>(mins[e]) * qa;
        }
        const uint8_t* blk = wq.data() + b * bb;
        uint16_t hd = 0, hm = 0;
        std::memcpy(&hd, blk + (tc.type == TensorType::Q6_K ? 208 : 0), 2);
        std::memcpy(&hm, blk + 2, 2);
        const float dx = xq[static_cast<size_t>(b)].d;
        acc = std::fma(static_cast<float>(s), f16_to_f32(hd) * dx, acc);
        if (tc.type != TensorType::Q6_K) {
          acc = std::fma(-static_cast<float>(m), f16_to_f32(hm) * dx, acc);
        }
      }
      const float block = dot_kquant_q8k_block(tc.type, wq.data(), xq.data(), n);
      EXPECT_EQ(block, acc) << type_name(tc.type) << " seed " << seed;
      differs_from_avx2_order += block != dot_kquant_q8k(tc.type, wq.data(), xq.data(), n);
    }
  }
  // The orders are distinct (else the AMX references could not tell them apart).
  EXPECT_GT(differs_from_avx2_order, 0);
}

TEST(KQuants, DotOfZeroRowsIsZero) {
  const std::vector<float> zeros(512, 0.0f);
  const auto xf = gaussian(512, 4);
  std::vector<BlockQ8_K> xq(2), zq(2);
  quantize_row_q8_K(xf.data(), xq.data(), 512);
  quantize_row_q8_K(zeros.data(), zq.data(), 512);
  for (const auto& tc : kTypes) {
    const auto wz = quantize(tc.type, zeros);
    const auto w = quantize(tc.type, gaussian(512, 6));
    EXPECT_EQ(dot_kquant_q8k(tc.type, wz.data(), xq.data(), 512), 0.0f);
    EXPECT_EQ(dot_kquant_q8k(tc.type, w.data(), zq.data(), 512), 0.0f);
    EXPECT_EQ(dot_kquant_q8k_scalar(tc.type, wz.data(), xq.data(), 512), 0.0f);
    EXPECT_EQ(dot_kquant_q8k_block(tc.type, wz.data(), xq.data(), 512), 0.0f);
    EXPECT_EQ(dot_kquant_q8k_block(tc.type, w.data(), zq.data(), 512), 0.0f);
  }
}

TEST(KQuantsDeathTest, RowLengthNotMultipleOf256Aborts) {
  // threadsafe re-executes the test binary; under qemu-user (the ARM build) that cannot work, so
  // tests/aarch64 asks for "fast" through the environment.
  if (std::getenv("GTEST_DEATH_TEST_STYLE") == nullptr)
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> x(300, 1.0f);
  std::vector<BlockQ8_K> q(2);
  EXPECT_DEATH(quantize_row_q8_K(x.data(), q.data(), 300), "multiple of 256");
}

}  // namespace
}  // namespace kquants_test
}  // namespace pareto::kernels
