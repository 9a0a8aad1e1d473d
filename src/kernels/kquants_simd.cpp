// AVX2 versions of the K-quant x Q8_K dot products in llama.cpp's x86 AVX2 order, bit-identical to
// kquants.cpp's vec_dot_q*_K_q8_K. The integer work is llama.cpp's own instruction sequence
// (maddubs of unsigned quants by signed Q8_K values, then madd by the sub-block scale): int16 pair
// sums stay below 2 * 63 * 128, so nothing saturates and lane k of each 32-element chunk is exactly
// the scaled sum of elements 4k..4k+3. The float work per block is the same fmas as kquants.cpp.
#include <cmath>

#include "base/half.h"
#include "kernels/ggml_math.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/simd_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace pareto::kernels {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Scaled lane sums of one 32-element chunk: unsigned quants q, Q8_K values x, scale s.
inline __m256i chunk_sums(__m256i q, __m256i x, int32_t s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(static_cast<int16_t>(s)));
}

inline float hsum8(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  return ggml::hsum8(lanes);
}

// Q4_K (kHigh = false) and Q5_K (kHigh = true).
template <bool kHigh, class Block>
float dot_q45_K(const Block* x, const BlockQ8_K* y, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();  // Q4_K mins, 4 lanes
  float summs = 0.0f;               // Q5_K mins
  for (int64_t i = 0; i < nb; ++i) {
    int32_t scale[8], min[8];
    for (int j = 0; j < 8; ++j) {
      uint8_t sc = 0, m = 0;
      kquant_scale_min(x[i].scales, j, &sc, &m);
      scale[j] = sc;
      min[j] = m;
    }
    __m256i hbits = _mm256_setzero_si256();
    if constexpr (kHigh) hbits = load32(x[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(x[i].qs + 32 * c);
      __m256i lo = _mm256_and_si256(q, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      if constexpr (kHigh) {
        // Bit 2c of qh[l] is bit 4 of element 64c + l; bit 2c + 1 that of 64c + 32 + l.
        const __m256i one = _mm256_set1_epi8(1);
        const __m256i b0 = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c)), one);
        const __m256i b1 =
            _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c + 1)), one);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
      }
      sumi = _mm256_add_epi32(sumi, chunk_sums(lo, load32(y[i].qs + 64 * c), scale[2 * c]));
      sumi =
          _mm256_add_epi32(sumi, chunk_sums(hi, load32(y[i].qs + 64 * c + 32), scale[2 * c + 1]));
    }
    const float d = y[i].d * _cvtsh_ss(x[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
    const int16_t* bs = y[i].bsums;
    int32_t prod[4];
    for (int m = 0; m < 4; ++m) {
      prod[m] = min[2 * m] * (bs[4 * m] + bs[4 * m + 1]) +
                min[2 * m + 1] * (bs[4 * m + 2] + bs[4 * m + 3]);
    }
    if constexpr (kHigh) {
      summs = std::fma(dmin, static_cast<float>(prod[0] + prod[1] + prod[2] + prod[3]), summs);
    } else {
      const __m128 p = _mm_cvtepi32_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(prod)));
      acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), p, acc_m);
    }
  }
  if constexpr (kHigh) return hsum8(acc) + summs;
  alignas(16) float m4[4];
  _mm_store_ps(m4, acc_m);
  return hsum8(acc) + ((m4[0] + m4[2]) + (m4[1] + m4[3]));
}

float dot_q6_K(const BlockQ6_K* x, const BlockQ8_K* y, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  const __m256i m32 = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(x[i].ql + 64 * h);
      const __m256i ql1 = load32(x[i].ql + 64 * h + 32);
      const __m256i qh = load32(x[i].qh + 32 * h);
      const __m256i hb[4] = {_mm256_and_si256(qh, low2),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), low2),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 4), low2),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 6), low2)};
      const __m256i lq[4] = {_mm256_and_si256(ql0, low4), _mm256_and_si256(ql1, low4),
                             _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                             _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4)};
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_or_si256(lq[j], _mm256_slli_epi16(hb[j], 4));
        const __m256i x8 = load32(y[i].qs + 128 * h + 32 * j);
        // (q - 32) * x as q * x - 32 * x, both exact in int16 pairs.
        const __m256i p =
            _mm256_sub_epi16(_mm256_maddubs_epi16(q, x8), _mm256_maddubs_epi16(m32, x8));
        const int s = 8 * h + 2 * j;
        const __m256i sc =
            _mm256_set_m128i(_mm_set1_epi16(x[i].scales[s + 1]), _mm_set1_epi16(x[i].scales[s]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
      }
    }
    const float d = y[i].d * _cvtsh_ss(x[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum8(acc);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

bool has_avx2_fma_f16c() { return avx2::avx2_fma_f16c_supported(); }  // cached there
#define PARETO_KQUANT_SIMD_X86 1
#endif

}  // namespace

float dot_kquant_q8k_fast(TensorType type, const void* w_row, const void* q8k_row, int64_t n) {
#ifdef PARETO_KQUANT_SIMD_X86
  if (has_avx2_fma_f16c() && n % kQK_K == 0) {
    const auto* y = static_cast<const BlockQ8_K*>(q8k_row);
    switch (type) {
      case TensorType::Q4_K:
        return dot_q45_K<false>(static_cast<const BlockQ4_K*>(w_row), y, n / kQK_K);
      case TensorType::Q5_K:
        return dot_q45_K<true>(static_cast<const BlockQ5_K*>(w_row), y, n / kQK_K);
      case TensorType::Q6_K:
        return dot_q6_K(static_cast<const BlockQ6_K*>(w_row), y, n / kQK_K);
      default:
        break;
    }
  }
#endif
  return dot_kquant_q8k(type, w_row, q8k_row, n);
}

}  // namespace pareto::kernels
