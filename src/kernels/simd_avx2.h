// Internal: AVX2+FMA+F16C building blocks for the float kernels, compiled per function with GCC
// target attributes (the rest of the build stays baseline x86-64) and chosen at run time with
// avx2_fma_f16c_supported(). Each routine is the vector form of a scalar lane routine in
// ggml_math.h / kernels_portable.cpp, with the same operations in the same order, so results are
// identical bit for bit (tests/kernels/float_simd_test.cpp checks that). The build uses
// -ffp-contract=off, so a multiply and an add are fused only where an fma intrinsic says so.
//
// The AVX-512 order (16 lanes) runs here as two 8-lane vectors per accumulator: lanes 0-7 and
// 8-15 of each 16-lane accumulator, with the same per-lane arithmetic and the same reductions.
#pragma once

#if defined(__x86_64__)
#define PARETO_HAVE_AVX2_KERNELS 1
#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>

#define PARETO_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

namespace pareto::kernels::avx2 {

// F16C is CPUID leaf 1, ECX bit 29 (asked directly: clang's __builtin_cpu_supports has no "f16c").
inline bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}

inline bool avx2_fma_f16c_supported() {
  static const bool supported =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  return supported;
}

// Element loaders: 8 consecutive values widened to f32 (exactly, as the f16/bf16 tables do).
struct F32Elem {
  using T = float;
  PARETO_AVX2_TARGET static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  PARETO_AVX2_TARGET static float scalar(float v) { return v; }
};
struct F16Elem {
  using T = uint16_t;
  PARETO_AVX2_TARGET static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  PARETO_AVX2_TARGET static float scalar(uint16_t v) { return _cvtsh_ss(v); }
};
struct BF16Elem {
  using T = uint16_t;
  PARETO_AVX2_TARGET static __m256 load(const uint16_t* p) {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  PARETO_AVX2_TARGET static float scalar(uint16_t v) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(v) << 16)));
  }
};

// Addition for the reductions below, on lanes (float) or on vectors of 8 independent sums.
PARETO_AVX2_TARGET inline float add(float a, float b) {
  return a + b;
}
PARETO_AVX2_TARGET inline __m256 add(__m256 a, __m256 b) {
  return _mm256_add_ps(a, b);
}

// The reductions of ggml_math.h / kernels_portable.cpp written once for a lane type V: float (one
// sum) or __m256 (8 independent sums, e.g. 8 output dims of attention). a is [4][W] or [W].
// ggml's hsum_float_8.
template <class V>
PARETO_AVX2_TARGET inline V hsum8(const V* v) {
  const V s0 = add(v[0], v[4]), s1 = add(v[1], v[5]), s2 = add(v[2], v[6]), s3 = add(v[3], v[7]);
  return add(add(s0, s2), add(s1, s3));
}
// GCC's _mm512_reduce_add_ps.
template <class V>
PARETO_AVX2_TARGET inline V reduce_add16(const V* a) {
  V t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = add(a[i + 8], a[i]);
  for (int i = 0; i < 4; ++i) t4[i] = add(t8[i + 4], t8[i]);
  return add(add(t4[0], t4[2]), add(t4[1], t4[3]));
}
// The horizontal sum of one W-lane vector (W = 8 * kKv).
template <int kKv, class V>
PARETO_AVX2_TARGET inline V hsum(const V* a) {
  if constexpr (kKv == 1) {
    return hsum8(a);
  } else {
    return reduce_add16(a);
  }
}
// GGML_F32x8_REDUCE / GGML_F32x16_REDUCE of four W-lane accumulators a [4][W].
template <int kKv, class V>
PARETO_AVX2_TARGET inline V reduce4(const V* a) {
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

// The same reductions of accumulators held in registers (one output each), without a round trip
// through memory. hsum8 of v: s = lo + hi (s_t = v_t + v_{t+4}), then (s0 + s2) + (s1 + s3).
PARETO_AVX2_TARGET inline float hsum8_reg(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 x = _mm_add_ps(s, _mm_movehl_ps(s, s));  // [s0 + s2, s1 + s3, ..]
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}
// hsum<kKv> of one W-lane accumulator held as kKv vectors (reduce_add16: t8 = hi + lo, then the
// 8-lane steps, which are those of hsum8).
template <int kKv>
PARETO_AVX2_TARGET inline float hsum_reg(const __m256* v) {
  if constexpr (kKv == 1) {
    return hsum8_reg(v[0]);
  } else {
    return hsum8_reg(_mm256_add_ps(v[1], v[0]));
  }
}
// reduce4<kKv> of four W-lane accumulators held as vectors: acc[j * kKv + v] is lanes 8v.. of
// accumulator j.
template <int kKv>
PARETO_AVX2_TARGET inline float reduce4_reg(const __m256* acc) {
  if constexpr (kKv == 1) {
    const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 h = _mm_hadd_ps(q, q);  // [q0 + q1, q2 + q3, ..]
    return _mm_cvtss_f32(_mm_hadd_ps(h, h));
  } else {
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    return hsum8_reg(_mm256_add_ps(hi, lo));
  }
}

// ggml_v_expf (AVX2), lane for lane as ggml::v_expf.
PARETO_AVX2_TARGET inline __m256 exp8(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
  const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 c = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
  const __m256 normal = _mm256_fmadd_ps(j, k, k);
  if (_mm256_movemask_ps(c) == 0) return normal;
  // Results near the ends of the float range: scale in two steps.
  const __m256i g =
      _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                       _mm256_set1_epi32(static_cast<int>(0x82000000u)));
  const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
  const __m256 d = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 far =
      _mm256_blendv_ps(_mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1), _mm256_mul_ps(s1, s1), d);
  return _mm256_blendv_ps(normal, far, c);
}

// The AVX-512 ggml_v_expf, lane for lane as ggml::v_expf16: the final j * 2^n (scalef, one
// rounding) is done as (j * 2^(n/2)) * 2^(n - n/2); the first product is exact because j is
// within [0.5, 2] and |n/2| <= 96, so only the second one rounds, as ldexp does.
PARETO_AVX2_TARGET inline __m256 exp16_lanes(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvttps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  const __m256 scaled = _mm256_mul_ps(_mm256_mul_ps(j, p1), p2);
  const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 d = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 nonpositive = _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ);
  const __m256 limit =
      _mm256_blendv_ps(_mm256_set1_ps(__builtin_inff()), _mm256_setzero_ps(), nonpositive);
  return _mm256_blendv_ps(scaled, limit, d);
}

// The vector exp of the mirrored build: kKv == 1 the AVX2 one, kKv == 2 the AVX-512 one.
template <int kKv>
PARETO_AVX2_TARGET inline __m256 vexp(__m256 x) {
  if constexpr (kKv == 1) {
    return exp8(x);
  } else {
    return exp16_lanes(x);
  }
}

}  // namespace pareto::kernels::avx2

#endif  // __x86_64__
