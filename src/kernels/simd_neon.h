// Internal: AArch64 NEON (Advanced SIMD, ARMv8.0 baseline: always present, no run-time check)
// building blocks for kernels that reproduce llama.cpp's x86 float orders. An x86 vector of W
// float lanes is held as W / 4 float32x4_t "quads": an AVX2 __m256 (8 lanes) as two, an AVX-512
// __m512 (16 lanes) as four, lane t in quad t / 4. Each routine is the vector form of a scalar lane
// routine in ggml_math.h / kernels_portable.cpp with the same operations in the same order, so
// results are identical bit for bit. Fused multiply-adds only where an intrinsic says so
// (vfmaq_f32 / vfmsq_f32); the kernels build with -ffp-contract=off, and none of the routines
// here has a multiply feeding an add that a contracting caller could fuse.
#pragma once

#if defined(__aarch64__) && defined(__ARM_NEON)
#define PARETO_HAVE_NEON_KERNELS 1
#include <arm_neon.h>

#include <cstdint>

namespace pareto::kernels::neon {

// Element loaders: 4 consecutive values widened to f32 (exactly, as the f16/bf16 tables do).
struct F32Elem {
  using T = float;
  static float32x4_t load(const float* p) { return vld1q_f32(p); }
  static float scalar(float v) { return v; }
};
struct F16Elem {
  using T = uint16_t;
  static float32x4_t load(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static float scalar(uint16_t v) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(v))), 0);
  }
};
struct BF16Elem {
  using T = uint16_t;
  // bf16 is the high half of an f32: widen and shift left by 16.
  static float32x4_t load(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float scalar(uint16_t v) {
    return vgetq_lane_f32(vreinterpretq_f32_u32(vdupq_n_u32(static_cast<uint32_t>(v) << 16)), 0);
  }
};

// Addition for the reductions below, on lanes (float) or on quads of 4 independent sums.
inline float add(float a, float b) {
  return a + b;
}
inline float32x4_t add(float32x4_t a, float32x4_t b) {
  return vaddq_f32(a, b);
}

// The reductions of ggml_math.h / kernels_portable.cpp written once for a lane type V: float (one
// sum) or float32x4_t (4 independent sums, e.g. 4 output dims of attention). a is [4][W] or [W].
// ggml's hsum_float_8.
template <class V>
inline V hsum8(const V* v) {
  const V s0 = add(v[0], v[4]), s1 = add(v[1], v[5]), s2 = add(v[2], v[6]), s3 = add(v[3], v[7]);
  return add(add(s0, s2), add(s1, s3));
}
// GCC's _mm512_reduce_add_ps.
template <class V>
inline V reduce_add16(const V* a) {
  V t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = add(a[i + 8], a[i]);
  for (int i = 0; i < 4; ++i) t4[i] = add(t8[i + 4], t8[i]);
  return add(add(t4[0], t4[2]), add(t4[1], t4[3]));
}
// The horizontal sum of one W-lane vector (W = 8 kKv).
template <int kKv, class V>
inline V hsum(const V* a) {
  if constexpr (kKv == 1) {
    return hsum8(a);
  } else {
    return reduce_add16(a);
  }
}
// GGML_F32x8_REDUCE / GGML_F32x16_REDUCE of four W-lane accumulators a [4][W].
template <int kKv, class V>
inline V reduce4(const V* a) {
  constexpr int kW = 8 * kKv;
  V s0[kW];
  for (int t = 0; t < kW; ++t) {
    s0[t] = add(add(a[t], a[2 * kW + t]), add(a[kW + t], a[3 * kW + t]));
  }
  if constexpr (kKv == 1) {
    V q[4];
    for (int t = 0; t < 4; ++t) q[t] = add(s0[t], s0[t + 4]);
    return add(add(q[0], q[1]), add(q[2], q[3]));
  } else {
    return reduce_add16(s0);
  }
}

// The same reductions of accumulators held as quads (one output each). hsum8 of the 8 lanes
// (lo, hi): s = lo + hi (s_t = v_t + v_{t+4}), then (s0 + s2) + (s1 + s3).
inline float hsum8_q(float32x4_t lo, float32x4_t hi) {
  const float32x4_t s = vaddq_f32(lo, hi);
  return vpadds_f32(vadd_f32(vget_low_f32(s), vget_high_f32(s)));  // [s0 + s2, s1 + s3]
}
// hsum<kKv> of one W-lane accumulator held as 2 kKv quads v (reduce_add16: t8 = hi + lo, then
// the 8-lane steps, which are those of hsum8).
template <int kKv>
inline float hsum_q(const float32x4_t* v) {
  if constexpr (kKv == 1) {
    return hsum8_q(v[0], v[1]);
  } else {
    return hsum8_q(vaddq_f32(v[2], v[0]), vaddq_f32(v[3], v[1]));
  }
}
// reduce4<kKv> of four W-lane accumulators held as quads: acc[j * 2 kKv + v] is lanes 4v.. of
// accumulator j.
template <int kKv>
inline float reduce4_q(const float32x4_t* acc) {
  constexpr int kQ = 2 * kKv;
  float32x4_t s[kQ];  // (A0 + A2) + (A1 + A3)
  for (int v = 0; v < kQ; ++v) {
    s[v] = vaddq_f32(vaddq_f32(acc[v], acc[2 * kQ + v]), vaddq_f32(acc[kQ + v], acc[3 * kQ + v]));
  }
  if constexpr (kKv == 1) {
    const float32x4_t q = vaddq_f32(s[0], s[1]);        // q_t = s_t + s_{t+4}
    return vpadds_f32(vget_low_f32(vpaddq_f32(q, q)));  // (q0 + q1) + (q2 + q3)
  } else {
    return hsum8_q(vaddq_f32(s[2], s[0]), vaddq_f32(s[3], s[1]));  // reduce_add16
  }
}

// ggml_v_expf (AVX2), lane for lane as ggml::v_expf. vfmsq_f32(x, n, c) is fma(-n, c, x).
inline float32x4_t exp8(float32x4_t x) {
  const float32x4_t r = vdupq_n_f32(0x1.8p23f);
  const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
  const float32x4_t n = vsubq_f32(z, r);
  const float32x4_t b =
      vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
  const uint32x4_t e = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
  const float32x4_t k = vreinterpretq_f32_u32(vaddq_u32(e, vdupq_n_u32(0x3f800000u)));
  const uint32x4_t c = vcagtq_f32(n, vdupq_n_f32(126.0f));  // |n| > 126
  const float32x4_t u = vmulq_f32(b, b);
  const float32x4_t j = vfmaq_f32(
      vmulq_f32(vdupq_n_f32(0x1.ffffecp-1f), b),
      vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
      u);
  const float32x4_t normal = vfmaq_f32(k, j, k);
  if (vmaxvq_u32(c) == 0) return normal;
  // Results near the ends of the float range: scale in two steps.
  const uint32x4_t g = vandq_u32(vclezq_f32(n), vdupq_n_u32(0x82000000u));
  const float32x4_t s1 = vreinterpretq_f32_u32(vaddq_u32(g, vdupq_n_u32(0x7f000000u)));
  const float32x4_t s2 = vreinterpretq_f32_u32(vsubq_u32(e, g));
  const uint32x4_t d = vcagtq_f32(n, vdupq_n_f32(192.0f));  // |n| > 192
  const float32x4_t far = vbslq_f32(d, vmulq_f32(s1, s1), vmulq_f32(vfmaq_f32(s2, s2, j), s1));
  return vbslq_f32(c, far, normal);
}

// The AVX-512 ggml_v_expf, lane for lane as ggml::v_expf16: the final j * 2^n (scalef, one
// rounding) is done as (j * 2^(n/2)) * 2^(n - n/2); the first product is exact because j is
// within [0.5, 2] and |n/2| <= 96, so only the second one rounds, as ldexp does.
inline float32x4_t exp16_lanes(float32x4_t x) {
  const float32x4_t r = vdupq_n_f32(0x1.8p23f);
  const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
  const float32x4_t n = vsubq_f32(z, r);
  const float32x4_t b =
      vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
  const float32x4_t u = vmulq_f32(b, b);
  const float32x4_t j = vfmaq_f32(
      vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0x1.ffffecp-1f), b),
      vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
      u);
  // n is an integer; where |n| <= 192 the conversion is exact (elsewhere the result is `limit`).
  const int32x4_t ni = vcvtq_s32_f32(n);
  const int32x4_t n1 = vshrq_n_s32(ni, 1);
  const int32x4_t n2 = vsubq_s32(ni, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t p1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t p2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  const float32x4_t scaled = vmulq_f32(vmulq_f32(j, p1), p2);
  const uint32x4_t d = vcagtq_f32(n, vdupq_n_f32(192.0f));  // |n| > 192
  const float32x4_t limit =
      vbslq_f32(vclezq_f32(n), vdupq_n_f32(0.0f), vdupq_n_f32(__builtin_inff()));
  return vbslq_f32(d, limit, scaled);
}

// The vector exp of the mirrored build: kKv == 1 the AVX2 one, kKv == 2 the AVX-512 one.
template <int kKv>
inline float32x4_t vexp(float32x4_t x) {
  if constexpr (kKv == 1) {
    return exp8(x);
  } else {
    return exp16_lanes(x);
  }
}

// ggml_v_silu (kKv == 1) / its AVX-512 form (kKv == 2): x / (1 + exp(0 - x)).
template <int kKv>
inline float32x4_t silu(float32x4_t x) {
  const float32x4_t e = vexp<kKv>(vsubq_f32(vdupq_n_f32(0.0f), x));
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
}

}  // namespace pareto::kernels::neon

#endif  // __aarch64__ && __ARM_NEON
