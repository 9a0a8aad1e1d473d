// Internal: AVX-512 (F + BW + VL) building blocks for the float kernels of llama.cpp's AVX-512
// order (16 lanes), compiled per function with target attributes (the build stays baseline
// x86-64) and chosen at run time with avx512_supported(). Each routine is the zmm form of a lane
// routine in ggml_math.h / kernels_portable.cpp with the same operations in the same order, so
// results are identical bit for bit (tests/kernels/float_avx512_test.cpp checks that). The build
// uses -ffp-contract=off, so a multiply and an add are fused only where an fma intrinsic says so.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/simd_avx2.h"

#if defined(PARETO_HAVE_AVX2_KERNELS)
#define PARETO_HAVE_AVX512_KERNELS 1

#define PARETO_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

// GCC 12's _mm512_undefined_* (`__m512 __Y = __Y;`) inside intrinsics such as _mm512_cvtph_ps
// trips -Wuninitialized once inlined: callers of these routines sit between these two macros.
#if defined(__clang__)
#define PARETO_AVX512_WARNINGS_PUSH
#define PARETO_AVX512_WARNINGS_POP
#else
#define PARETO_AVX512_WARNINGS_PUSH                                                    \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define PARETO_AVX512_WARNINGS_POP _Pragma("GCC diagnostic pop")
#endif

namespace pareto::kernels::avx512 {

inline bool avx512_supported() {
  static const bool supported =
      avx2::avx2_fma_f16c_supported() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return supported;
}
// The integer kernels' extra need: vpdpbusd / vpdpwssd (K-quants, packed weights).
inline bool avx512_vnni_supported() {
  static const bool supported = avx512_supported() && __builtin_cpu_supports("avx512vnni");
  return supported;
}

// Element loaders: 16 consecutive values widened to f32 (exactly, as the f16/bf16 tables do);
// `scalar` widens one value the same way, for the tails.
struct F32Elem {
  using T = float;
  PARETO_AVX512_TARGET static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  PARETO_AVX512_TARGET static float scalar(float v) { return v; }
};
// F32 values that are F16 values (an F16 cache's decoded keys, a query rounded to F16): loaded as
// F32, summed in ggml_vec_dot_f16's order (vec_dot_rows: the tail in double).
struct F16ValuedF32Elem : F32Elem {};
struct F16Elem {
  using T = uint16_t;
  PARETO_AVX512_TARGET static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  PARETO_AVX512_TARGET static float scalar(uint16_t v) { return _cvtsh_ss(v); }
};
struct BF16Elem {
  using T = uint16_t;
  PARETO_AVX512_TARGET static __m512 load(const uint16_t* p) {
    const __m512i wide =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  PARETO_AVX512_TARGET static float scalar(uint16_t v) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(v) << 16)));
  }
};

// GCC's _mm512_reduce_add_ps (ggml::reduce_add16) of one register: t8 = hi + lo, then the
// 8-lane steps (those of hsum8).
PARETO_AVX512_TARGET inline float hsum16(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return avx2::hsum8_reg(_mm256_add_ps(hi, lo));
}

// GGML_F32x16_REDUCE of four 16-lane accumulators: (a0 + a2) + (a1 + a3), then reduce_add16.
PARETO_AVX512_TARGET inline float reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  return hsum16(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
}

// hsum16 of 16 registers at once: lane m of the result is hsum16(v[m]), bit for bit (the same
// pairs are added: t8[i] = v[i] + v[i + 8], t4[i] = t8[i] + t8[i + 4], (t4[0] + t4[2]) +
// (t4[1] + t4[3]); IEEE addition is commutative). About 2 shuffles and 1 add per register instead
// of a shuffle tree each.
PARETO_AVX512_TARGET inline __m512 hsum16_x16(const __m512 (&v)[16]) {
  __m512 u[8], w[4];
  for (int p = 0; p < 8; ++p) {  // [t8 of v[2p] | t8 of v[2p + 1]]
    const __m512 lo = _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi = _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2));
    u[p] = _mm512_add_ps(lo, hi);
  }
  for (int q = 0; q < 4; ++q) {  // 128-bit quarter k: t4 of v[4q + k]
    const __m512 lo = _mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 hi = _mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1));
    w[q] = _mm512_add_ps(lo, hi);
  }
  // Quarter k: [t4[0] + t4[2], t4[1] + t4[3]] of v[k] and v[4 + k] (z0), v[8 + k] and v[12 + k]
  // (z1).
  const __m512 z0 = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 z1 = _mm512_add_ps(_mm512_shuffle_ps(w[2], w[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(w[2], w[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lane 4k + j: the sum of v[k + 4j].
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(z0, z1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(z0, z1, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, r);
}

// The same reductions across registers, each register holding 16 independent sums (e.g. 16
// output dims of attention): a[s] is lane s of the reduced vector.
PARETO_AVX512_TARGET inline __m512 reduce_add16_across(const __m512* a) {
  __m512 t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = _mm512_add_ps(a[i + 8], a[i]);
  for (int i = 0; i < 4; ++i) t4[i] = _mm512_add_ps(t8[i + 4], t8[i]);
  return _mm512_add_ps(_mm512_add_ps(t4[0], t4[2]), _mm512_add_ps(t4[1], t4[3]));
}
// GGML_F32x16_REDUCE across registers: a [4][16], accumulator k lane t at a[16k + t].
PARETO_AVX512_TARGET inline __m512 reduce4_across(const __m512* a) {
  __m512 s0[16];
  for (int t = 0; t < 16; ++t) {
    s0[t] = _mm512_add_ps(_mm512_add_ps(a[t], a[32 + t]), _mm512_add_ps(a[16 + t], a[48 + t]));
  }
  return reduce_add16_across(s0);
}

// The AVX-512 ggml_v_expf, lane for lane as ggml::v_expf16 (the final j * 2^n is scalef: one
// rounding, as ldexp).
PARETO_AVX512_TARGET inline __m512 exp16(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(
          _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
          _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
  const __m512 res = _mm512_scalef_ps(j, n);
  if (d == 0) return res;
  // |n| > 192: 0 below the float range, infinity above it.
  const __mmask16 nonpositive = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
  const __m512 alt =
      _mm512_mask_blend_ps(nonpositive, _mm512_set1_ps(__builtin_inff()), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(d, res, alt);
}

// ggml_v_silu (AVX-512): x / (1 + exp(0 - x)), lane for lane as ggml::v_silu16.
PARETO_AVX512_TARGET inline __m512 silu16(__m512 x) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

PARETO_AVX512_WARNINGS_PUSH
// ggml_vec_dot_{f32,f16,bf16} of kRows weight rows a with one f32 activation row b: 4
// accumulators of 16 lanes over chunks of 64; GGML_F32x16_REDUCE; the tail in float with separate
// multiply and add (F32) or in double (F16/BF16, F16ValuedF32Elem). Used by the matmuls
// (kernels_float_avx512.cpp) and the attention scores (kernels_float_avx512_attention.cpp).
// kTail false: out[m] is the sum of the first n & ~63 elements only (the caller adds the tail
// in the same order, for many rows at once: f32_tails_x16). kPrefetch false: no prefetch of the
// next rows (a later token of the same rows: they are in cache, and the prefetches would take
// load slots from the arithmetic).
// vec_dot_rows' accumulation: acc[m][k] over the first np (a multiple of 64) elements.
template <class E, int kRows, bool kPrefetch>
PARETO_AVX512_TARGET inline void vec_dot_accumulate(const typename E::T* const* a, const float* b,
                                                    int64_t n, int64_t np,
                                                    __m512 (&acc)[kRows][4]) {
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < np; i += 64) {
    // The same elements of the next kRows rows (the next group, when rows are consecutive), so
    // that they arrive by the time this group is done: +15% decode bandwidth measured here. The
    // address may lie past the matrix (a prefetch never faults), hence integer arithmetic.
    for (int m = 0; m < kRows && kPrefetch; ++m) {
      const uintptr_t next = reinterpret_cast<uintptr_t>(a[m] + i) + kRows * n * sizeof(*a[m]);
      for (uintptr_t line = 0; line < 64 * sizeof(*a[m]); line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(next + line), _MM_HINT_T0);
      }
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m512 bv = _mm512_loadu_ps(b + i + 16 * k);
#pragma GCC unroll 8
      for (int m = 0; m < kRows; ++m) {
        acc[m][k] = _mm512_fmadd_ps(E::load(a[m] + i + 16 * k), bv, acc[m][k]);
      }
    }
  }
}

// vec_dot_rows' main part before its horizontal sum: v[m] = (acc0 + acc2) + (acc1 + acc3), whose
// hsum16 is the row's sum over the first n & ~63 elements (hsum16_x16 takes 16 rows at once, with
// the same bits).
template <class E, int kRows, bool kPrefetch = true>
PARETO_AVX512_TARGET inline void vec_dot_rows_unreduced(const typename E::T* const* a,
                                                        const float* b, int64_t n, __m512* v) {
  __m512 acc[kRows][4];
  vec_dot_accumulate<E, kRows, kPrefetch>(a, b, n, n & ~int64_t{63}, acc);
  for (int m = 0; m < kRows; ++m) {
    v[m] = _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][2]), _mm512_add_ps(acc[m][1], acc[m][3]));
  }
}

template <class E, int kRows, bool kTail = true, bool kPrefetch = true>
PARETO_AVX512_TARGET static void vec_dot_rows(const typename E::T* const* a, const float* b,
                                              int64_t n, float* out) {
  const int64_t np = n & ~int64_t{63};
  __m512 acc[kRows][4];
  vec_dot_accumulate<E, kRows, kPrefetch>(a, b, n, np, acc);
  for (int m = 0; m < kRows; ++m) {
    const float main_sum = reduce4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
    if constexpr (!kTail) {
      out[m] = main_sum;
    } else if constexpr (std::is_same_v<E, F32Elem>) {
      float sum = main_sum;
      for (int64_t i = np; i < n; ++i) sum += a[m][i] * b[i];
      out[m] = sum;
    } else {
      double sum = main_sum;
      for (int64_t i = np; i < n; ++i) {
        sum += static_cast<double>(E::scalar(a[m][i]) * b[i]);
      }
      out[m] = static_cast<float>(sum);
    }
  }
}
// One stage of transpose16x16: at block size K the off-diagonal KxK blocks of rows i and i + K
// (bit K of i clear) swap, two 2-source permutes per pair.
template <int K>
PARETO_AVX512_TARGET inline void transpose_stage(__m512 (&r)[16]) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __mmask16 high = _mm512_test_epi32_mask(iota, _mm512_set1_epi32(K));  // c & K
  // lo[c] = c & K ? 16 + c - K : c;  hi[c] = c & K ? 16 + c : c + K
  const __m512i lo = _mm512_mask_add_epi32(iota, high, iota, _mm512_set1_epi32(16 - K));
  const __m512i hi = _mm512_mask_add_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(K)), high, iota,
                                           _mm512_set1_epi32(16));
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if ((i & K) != 0) continue;
    const __m512 a = r[i], b = r[i + K];
    r[i] = _mm512_permutex2var_ps(a, lo, b);
    r[i + K] = _mm512_permutex2var_ps(a, hi, b);
  }
}

// r[i][c] -> r[c][i] for a 16x16 block of floats (recursive block transpose: swap the
// off-diagonal blocks at sizes 8, 4, 2, 1).
PARETO_AVX512_TARGET inline void transpose16x16(__m512 (&r)[16]) {
  transpose_stage<8>(r);
  transpose_stage<4>(r);
  transpose_stage<2>(r);
  transpose_stage<1>(r);
}

// Columns i0 .. i0 + cols - 1 (cols <= 16) of 16 rows of floats (`row_stride` apart), one
// column per register: r[c][m] = a[m][i0 + c] (lanes past cols and registers past cols are 0).
PARETO_AVX512_TARGET inline void load_columns16(const float* a, int64_t row_stride, int64_t i0,
                                                int cols, __m512 (&r)[16]) {
  const auto mask = static_cast<__mmask16>((1u << cols) - 1u);
#pragma GCC unroll 16
  for (int m = 0; m < 16; ++m) r[m] = _mm512_maskz_loadu_ps(mask, a + m * row_stride + i0);
  transpose16x16(r);
}

// The F32 tail of 16 consecutive rows at once (rows of n floats, `row_stride` floats apart):
// sums[m] += a[m][i] * b[i] for i = begin..n-1 in order, each a rounded product then a rounded
// sum, as vec_dot_rows' scalar tail (built without contraction) -- the same bits, but one row per
// lane (16 columns at a time, transposed in registers): the 16 chains of dependent additions run
// side by side instead of one after another.
PARETO_AVX512_TARGET inline void f32_tails_x16(const float* a, int64_t row_stride, const float* b,
                                               int64_t begin, int64_t n, float* sums) {
  __m512 s = _mm512_loadu_ps(sums);
  for (int64_t i0 = begin; i0 < n; i0 += 16) {
    const int cols = static_cast<int>(std::min<int64_t>(16, n - i0));
    __m512 r[16];
    load_columns16(a, row_stride, i0, cols, r);
    if (cols == 16) {
#pragma GCC unroll 16
      for (int c = 0; c < 16; ++c) {
        s = _mm512_add_ps(s, _mm512_mul_ps(r[c], _mm512_set1_ps(b[i0 + c])));
      }
      continue;
    }
    for (int c = 0; c < cols; ++c) {
      s = _mm512_add_ps(s, _mm512_mul_ps(r[c], _mm512_set1_ps(b[i0 + c])));
    }
  }
  _mm512_storeu_ps(sums, s);
}

// ggml_vec_dot_f16's tail (vec_dot_rows with F16ValuedF32Elem) of 16 rows at once: sums[m] +=
// double(a[m][i] * b[i]) for i = begin..n-1 in order, each product rounded to float and added in
// double (8 rows per double vector), the result rounded to float. The same bits as the scalar
// tail, one row per lane after a transpose.
PARETO_AVX512_TARGET inline void f16_valued_tails_x16(const float* a, int64_t row_stride,
                                                      const float* b, int64_t begin, int64_t n,
                                                      float* sums) {
  const __m512 start = _mm512_loadu_ps(sums);
  __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(start));
  __m512d hi =
      _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(start), 1)));
  for (int64_t i0 = begin; i0 < n; i0 += 16) {
    const int cols = static_cast<int>(std::min<int64_t>(16, n - i0));
    __m512 r[16];
    load_columns16(a, row_stride, i0, cols, r);
    for (int c = 0; c < cols; ++c) {
      const __m512 p = _mm512_mul_ps(r[c], _mm512_set1_ps(b[i0 + c]));
      lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
      hi = _mm512_add_pd(
          hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p), 1))));
    }
  }
  _mm256_storeu_ps(sums, _mm512_cvtpd_ps(lo));
  _mm256_storeu_ps(sums + 8, _mm512_cvtpd_ps(hi));
}

// f32_tails_x16 for n_tokens activation rows (b + t * b_stride) at once: each 16x16 block of
// weights is loaded and transposed once for all of them; sums + 16 * t are token t's. Every
// token's sums get exactly f32_tails_x16's operations, in its order.
PARETO_AVX512_TARGET inline void f32_tails_x16_tokens(const float* a, int64_t row_stride,
                                                      const float* b, int64_t b_stride,
                                                      int64_t n_tokens, int64_t begin, int64_t n,
                                                      float* sums) {
  for (int64_t i0 = begin; i0 < n; i0 += 16) {
    const int cols = static_cast<int>(std::min<int64_t>(16, n - i0));
    __m512 r[16];
    load_columns16(a, row_stride, i0, cols, r);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* bt = b + t * b_stride + i0;
      __m512 s = _mm512_loadu_ps(sums + 16 * t);
      if (cols == 16) {
#pragma GCC unroll 16
        for (int c = 0; c < 16; ++c)
          s = _mm512_add_ps(s, _mm512_mul_ps(r[c], _mm512_set1_ps(bt[c])));
      } else {
        for (int c = 0; c < cols; ++c)
          s = _mm512_add_ps(s, _mm512_mul_ps(r[c], _mm512_set1_ps(bt[c])));
      }
      _mm512_storeu_ps(sums + 16 * t, s);
    }
  }
}

PARETO_AVX512_WARNINGS_POP

}  // namespace pareto::kernels::avx512

#endif  // PARETO_HAVE_AVX2_KERNELS
