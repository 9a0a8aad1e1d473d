// Exhaustive checks of the F16 and BF16 conversions (src/base/half.h) over all 65536 encodings.
#include "base/half.h"

#include <cmath>
#include <cstdint>

#include <gtest/gtest.h>

namespace pareto {
namespace {

// The value an f16 encoding denotes, computed independently in double.
double f16_value(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::nan("") : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(Half, F16ToF32MatchesDefinitionForAllEncodings) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const double expected = f16_value(h);
    const float got = f16_to_f32(h);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << i;
    } else {
      ASSERT_EQ(static_cast<double>(got), expected) << "encoding " << i;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << "encoding " << i;
    }
  }
}

TEST(Half, F16RoundTripsEveryEncoding) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const uint16_t back = f32_to_f16(f16_to_f32(h));
    if (std::isnan(f16_value(h))) {
      EXPECT_TRUE(std::isnan(f16_to_f32(back))) << i;
    } else {
      ASSERT_EQ(back, h) << "encoding " << i;
    }
  }
}

// Between two adjacent finite f16 values a < b (same sign, positive here), the midpoint rounds to
// the one with an even mantissa and anything off the midpoint rounds to the nearer one.
TEST(Half, F32ToF16RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t i = 0; i < 0x7bff; ++i) {  // up to the largest finite f16 minus one step
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
      const auto lo = static_cast<uint16_t>(i | sign);
      const auto hi = static_cast<uint16_t>((i + 1) | sign);
      const float a = f16_to_f32(lo);
      const float b = f16_to_f32(hi);
      const float mid = static_cast<float>((static_cast<double>(a) + b) / 2);  // exact in f32
      const uint16_t even = (i & 1) ? hi : lo;
      ASSERT_EQ(f32_to_f16(mid), even) << "midpoint after encoding " << i;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, a)), lo) << i;
      ASSERT_EQ(f32_to_f16(std::nextafter(mid, b)), hi) << i;
    }
  }
}

TEST(Half, F32ToF16OverflowAndSpecials) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);   // ties to even: infinity
  EXPECT_EQ(f32_to_f16(-1e9f), 0xfc00);
  EXPECT_EQ(f32_to_f16(HUGE_VALF), 0x7c00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
  EXPECT_EQ(f32_to_f16(1e-9f), 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(Half, Bf16RoundTripsEveryEncoding) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float v = bf16_to_f32(h);
    ASSERT_EQ(std::bit_cast<uint32_t>(v), i << 16) << i;
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(v)))) << i;
    } else {
      ASSERT_EQ(f32_to_bf16(v), h) << i;
    }
  }
}

TEST(Half, F32ToBf16RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t i = 0; i < 0x7f7f; ++i) {  // finite positives below the largest finite bf16
    const auto lo = static_cast<uint16_t>(i);
    const auto hi = static_cast<uint16_t>(i + 1);
    const uint32_t mid_bits = (i << 16) | 0x8000u;  // exactly halfway between lo and hi
    const float mid = std::bit_cast<float>(mid_bits);
    ASSERT_EQ(f32_to_bf16(mid), (i & 1) ? hi : lo) << i;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid_bits - 1)), lo) << i;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid_bits + 1)), hi) << i;
  }
}

}  // namespace
}  // namespace pareto
