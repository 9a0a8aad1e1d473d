// Internal: scalar, bit-exact re-statements of the vectorized math llama.cpp's CPU backend (ggml)
// uses on x86-64 with AVX2+FMA (identical lane arithmetic on AArch64 NEON). Matching them bit
// for bit matters: a one-ulp difference before an F16 or Q8_0 rounding step can flip the rounded
// value and move logits by ~0.1. std::fma gives the fused multiply-adds exactly on any machine.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace pareto::kernels::ggml {

// Width of ggml's AVX2 float vectors: elementwise loops run full vectors of this many elements
// through the vector routine and the remainder through the scalar libm one.
inline constexpr int kVecWidth = 8;

// ggml_v_expf, one lane (adapted by ggml from ARM's optimized routines; max error ~1.5 ulp).
inline float v_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const uint32_t e = std::bit_cast<uint32_t>(z) << 23;
  const float k = std::bit_cast<float>(e + std::bit_cast<uint32_t>(1.0f));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, 0x1.ffffecp-1f * b);
  if (!(std::fabs(n) > 126.0f)) return std::fma(j, k, k);
  // Results near the ends of the float range: scale in two steps.
  const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = std::bit_cast<float>(g + 0x7f000000u);
  const float s2 = std::bit_cast<float>(e - g);
  if (std::fabs(n) > 192.0f) return s1 * s1;
  return std::fma(s2, j, s2) * s1;
}

// ggml_v_silu, one lane: x / (1 + v_expf(0 - x)).
inline float v_silu(float x) {
  return x / (1.0f + v_expf(0.0f - x));
}

// ggml_silu_f32: the scalar routine used for the elements after the last full vector.
inline float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

// ggml's hsum_float_8: the horizontal sum of an 8-lane vector in AVX2 shuffle order.
inline float hsum8(const float (&v)[8]) {
  const float s0 = v[0] + v[4], s1 = v[1] + v[5], s2 = v[2] + v[6], s3 = v[3] + v[7];
  return (s0 + s2) + (s1 + s3);
}

// AVX-512 ggml_v_expf, one lane: the same polynomial with the final scaling by 2^n done exactly
// (_mm512_scalef_ps), so its results differ from v_expf in the last bit.
inline float v_expf16(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));
}

// AVX-512 ggml_v_silu, one lane.
inline float v_silu16(float x) {
  return x / (1.0f + v_expf16(0.0f - x));
}

// GCC's _mm512_reduce_add_ps: halves added pairwise down to 4 lanes, then (0+2) + (1+3).
inline float reduce_add16(const float (&a)[16]) {
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

}  // namespace pareto::kernels::ggml
