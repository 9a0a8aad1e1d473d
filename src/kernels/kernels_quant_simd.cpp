// AVX2 versions of the Q8_0 / Q4_0 kernels, bit-identical to the lane loops (see the header).
// The integer products use llama.cpp's own instruction sequence (sign + maddubs + madd), which
// yields exactly the per-lane integer sums of elements 4t..4t+3: |w| <= 128 and |x| <= 127
// (activations come from quantize_activations_q8_0), so maddubs' int16 pair sums cannot saturate.
// Float work per block is one f32 product of two exactly converted fp16 scales and one fma per
// lane, as in the lane loops.
#include "kernels/kernels_quant_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/half.h"
#include "kernels/ggml_math.h"
#include "kernels/kquants.h"
#include "kernels/simd_avx2.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PARETO_QUANT_SIMD_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define PARETO_QUANT_NEON 1  // kernels_quant_neon.cpp
#endif

namespace pareto::kernels {
namespace {

constexpr int kLanes = 8;
[[maybe_unused]] constexpr int kTokenTile = 4;  // tokens per weight block load (x86 prefill)

const BlockQ8_0* as_q8(const uint8_t* p) {
  return reinterpret_cast<const BlockQ8_0*>(p);
}
const BlockQ4_0* as_q4(const uint8_t* p) {
  return reinterpret_cast<const BlockQ4_0*>(p);
}

// --- Reference lane loops (portable; the fallback and the test oracle) ---

void unpack_block(const BlockQ8_0& b, int8_t (&w)[kQuantBlock]) {
  std::memcpy(w, b.qs, kQuantBlock);
}

void unpack_block(const BlockQ4_0& b, int8_t (&w)[kQuantBlock]) {
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    w[j] = static_cast<int8_t>((b.qs[j] & 0x0f) - 8);
    w[j + kQuantBlock / 2] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
  }
}

template <class WeightBlock>
float dot_lanes_ref(const WeightBlock* wb, const BlockQ8_0* xb, int64_t n_blocks) {
  float acc[kLanes] = {};
  int8_t w[kQuantBlock];
  for (int64_t b = 0; b < n_blocks; ++b) {
    unpack_block(wb[b], w);
    const float d = f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d);
    for (int t = 0; t < kLanes; ++t) {
      int32_t s = 0;
      for (int i = 4 * t; i < 4 * t + 4; ++i) s += w[i] * xb[b].qs[i];
      acc[t] = std::fma(d, static_cast<float>(s), acc[t]);
    }
  }
  return ggml::hsum8(acc);
}

template <float (*kDot)(const uint8_t*, const uint8_t*, int64_t)>
void rows_ref(const WeightView& w, const PreparedActivations& x, int64_t row_begin, int64_t row_end,
              float* y) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < x.n_tokens; ++t) y[t * w.rows + r] = kDot(w.row(r), x.row(t), w.cols);
  }
}

#ifdef PARETO_QUANT_SIMD_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

// 8 int32 lanes: lane t = sum_{i in [4t, 4t+4)} w[i] * x[i] (ggml's mul_sum_i8_pairs).
inline __m256i lane_sums(__m256i w, __m256i x) {
  const __m256i ax = _mm256_sign_epi8(w, w);
  const __m256i sx = _mm256_sign_epi8(x, w);
  const __m256i pairs = _mm256_maddubs_epi16(ax, sx);
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

inline __m256i load_weights(const BlockQ8_0& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}

// Elements 0..15 from the low nibbles, 16..31 from the high nibbles, minus 8.
inline __m256i load_weights(const BlockQ4_0& b) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

inline __m256i load_acts(const BlockQ8_0& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}

inline float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

inline float hsum8(__m256 v) {
  alignas(32) float lanes[kLanes];
  _mm256_store_ps(lanes, v);
  return ggml::hsum8(lanes);
}

inline int32_t hsum_i32(__m256i v) {
  const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
  return _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)));
}

// NT tokens against one weight row, lanes order; out[k] = dot(row, token k).
template <int NT, class WeightBlock>
inline void dot_lanes_tile(const WeightBlock* wb, const BlockQ8_0* const* xs, int64_t n_blocks,
                           float* out) {
  __m256 acc[NT];
  for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256i wq = load_weights(wb[b]);
    const float dw = half_to_float(wb[b].d);
    for (int k = 0; k < NT; ++k) {
      const float d = dw * half_to_float(xs[k][b].d);
      const __m256 lanes = _mm256_cvtepi32_ps(lane_sums(wq, load_acts(xs[k][b])));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), lanes, acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) out[k] = hsum8(acc[k]);
}

// NT tokens against one Q4_0 weight row in the repacked order (or one Q8_0 row in the block
// order: the same formula).
template <int NT, class WeightBlock>
inline void dot_repacked_tile(const WeightBlock* wb, const BlockQ8_0* const* xs, int64_t n_blocks,
                              float* out) {
  float acc[NT] = {};
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256i wq = load_weights(wb[b]);
    const float dw = half_to_float(wb[b].d);
    for (int k = 0; k < NT; ++k) {
      const int32_t s = hsum_i32(lane_sums(wq, load_acts(xs[k][b])));
      acc[k] = std::fma(static_cast<float>(s), dw * half_to_float(xs[k][b].d), acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) out[k] = acc[k];
}

// out[r] = sum of the 8 lanes of v[r], r < 8 (exact integer adds).
inline __m256i hsum_i32_x8(const __m256i (&v)[8]) {
  const __m256i a01 = _mm256_hadd_epi32(v[0], v[1]), a23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i a45 = _mm256_hadd_epi32(v[4], v[5]), a67 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i b0 = _mm256_hadd_epi32(a01, a23);  // per 128-bit half: rows 0..3
  const __m256i b1 = _mm256_hadd_epi32(a45, a67);  // rows 4..7
  return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20),
                          _mm256_permute2x128_si256(b0, b1, 0x31));
}

// 8 Q4_0 rows x NT tokens, repacked order, as ggml_gemv/gemm_q4_0_8x8_q8_0 lay it out: one float
// lane per row, acc[r] = fma((float)s_r, d_w[r] * d_x, acc[r]) block after block.
// out[k * out_stride + r] for token k.
template <int NT, class WeightBlock>
inline void dot_repacked_8rows(const WeightBlock* const (&wb)[8], const BlockQ8_0* const* xs,
                               int64_t n_blocks, float* out, int64_t out_stride) {
  __m256 acc[NT];
  for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256i wq[8];
    alignas(16) uint16_t dw_bits[8];
    for (int r = 0; r < 8; ++r) {
      wq[r] = load_weights(wb[r][b]);
      dw_bits[r] = wb[r][b].d;
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dw_bits)));
    for (int k = 0; k < NT; ++k) {
      const __m256i xq = load_acts(xs[k][b]);
      __m256i lanes[8];
      for (int r = 0; r < 8; ++r) lanes[r] = lane_sums(wq[r], xq);
      const __m256 s = _mm256_cvtepi32_ps(hsum_i32_x8(lanes));
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(half_to_float(xs[k][b].d)));
      acc[k] = _mm256_fmadd_ps(s, d, acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) _mm256_storeu_ps(out + k * out_stride, acc[k]);
}

// Repacked Q4_0 rows (or block-order Q8_0 rows) in groups of 8 (llama.cpp repacks Q4_0 only when
// rows % 8 == 0); a partial group at either end of the range goes row by row.
template <class WeightBlock>
void rows_repacked_avx2(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                        int64_t row_end, float* y) {
  const int64_t n_blocks = w.cols / kQuantBlock;
  const BlockQ8_0* xs[kTokenTile];
  int64_t r = row_begin;
  const auto single_rows = [&](int64_t end) {
    float out[1];
    for (; r < end; ++r) {
      const auto* wb = reinterpret_cast<const WeightBlock*>(w.row(r));
      for (int64_t t = 0; t < x.n_tokens; ++t) {
        xs[0] = as_q8(x.row(t));
        dot_repacked_tile<1>(wb, xs, n_blocks, out);
        y[t * w.rows + r] = out[0];
      }
    }
  };
  single_rows(std::min(row_end, (row_begin + 7) / 8 * 8));
  for (; r + 8 <= row_end; r += 8) {
    const WeightBlock* wb[8];
    for (int i = 0; i < 8; ++i) wb[i] = reinterpret_cast<const WeightBlock*>(w.row(r + i));
    int64_t t = 0;
    for (; t + kTokenTile <= x.n_tokens; t += kTokenTile) {
      for (int k = 0; k < kTokenTile; ++k) xs[k] = as_q8(x.row(t + k));
      dot_repacked_8rows<kTokenTile>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
    for (; t < x.n_tokens; ++t) {
      xs[0] = as_q8(x.row(t));
      dot_repacked_8rows<1>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
  }
  single_rows(row_end);
}

template <bool kRepacked, class WeightBlock>
void rows_avx2(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
               int64_t row_end, float* y) {
  const int64_t n_blocks = w.cols / kQuantBlock;
  const BlockQ8_0* xs[kTokenTile];
  float out[kTokenTile];
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* wb = reinterpret_cast<const WeightBlock*>(w.row(r));
    int64_t t = 0;
    for (; t + kTokenTile <= x.n_tokens; t += kTokenTile) {
      for (int k = 0; k < kTokenTile; ++k) xs[k] = as_q8(x.row(t + k));
      if constexpr (kRepacked) {
        dot_repacked_tile<kTokenTile>(wb, xs, n_blocks, out);
      } else {
        dot_lanes_tile<kTokenTile>(wb, xs, n_blocks, out);
      }
      for (int k = 0; k < kTokenTile; ++k) y[(t + k) * w.rows + r] = out[k];
    }
    for (; t < x.n_tokens; ++t) {
      xs[0] = as_q8(x.row(t));
      if constexpr (kRepacked) {
        dot_repacked_tile<1>(wb, xs, n_blocks, out);
      } else {
        dot_lanes_tile<1>(wb, xs, n_blocks, out);
      }
      y[t * w.rows + r] = out[0];
    }
  }
}

template <bool kRepacked, class WeightBlock>
float dot_avx2(const uint8_t* w, const uint8_t* x, int64_t n) {
  const BlockQ8_0* xs[1] = {as_q8(x)};
  float out[1];
  const auto* wb = reinterpret_cast<const WeightBlock*>(w);
  if constexpr (kRepacked) {
    dot_repacked_tile<1>(wb, xs, n / kQuantBlock, out);
  } else {
    dot_lanes_tile<1>(wb, xs, n / kQuantBlock, out);
  }
  return out[0];
}

// llama.cpp's x86 quantize_row_q8_0: amax by vector max (exact in any order), d = amax / 127
// rounded to fp16, q = round-half-even(x * (127 / amax)).
void quantize_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t n) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 m = _mm256_andnot_ps(sign_bit, v[0]);
    for (int i = 1; i < 4; ++i) m = _mm256_max_ps(m, _mm256_andnot_ps(sign_bit, v[i]));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    y[b].d = f32_to_f16(amax / 127.0f);
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 r =
          _mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[i] = _mm256_cvtps_epi32(r);
    }
    // Packing interleaves 128-bit halves; the permute restores element order.
    const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i bytes = _mm256_packs_epi16(q01, q23);
    const __m256i ordered =
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), ordered);
  }
}

// F32 -> F16 with round to nearest even, 8 at a time (F16C's vcvtps2ph, as ggml's
// GGML_CPU_FP32_TO_FP16 on x86): the bits of f32_to_f16 for every value but a NaN's payload.
void f32_to_f16_row_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

bool has_avx2_fma_f16c() {
  return avx2::avx2_fma_f16c_supported();
}  // cached there
#else
bool has_avx2_fma_f16c() {
  return false;
}
#endif

}  // namespace

bool quant_simd_available() {
  return has_avx2_fma_f16c();
}

float dot_q8_0_lanes_ref(const uint8_t* w, const uint8_t* x, int64_t n) {
  return dot_lanes_ref(as_q8(w), as_q8(x), n / kQuantBlock);
}

float dot_q4_0_lanes_ref(const uint8_t* w, const uint8_t* x, int64_t n) {
  return dot_lanes_ref(as_q4(w), as_q8(x), n / kQuantBlock);
}

namespace {
template <class WeightBlock>
float dot_block_ref(const WeightBlock* wb, const BlockQ8_0* xb, int64_t n) {
  float acc = 0.0f;
  int8_t wq[kQuantBlock];
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    unpack_block(wb[b], wq);
    int32_t s = 0;
    for (int i = 0; i < kQuantBlock; ++i) s += wq[i] * xb[b].qs[i];
    acc = std::fma(static_cast<float>(s), f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d), acc);
  }
  return acc;
}
}  // namespace

float dot_q4_0_repacked_ref(const uint8_t* w, const uint8_t* x, int64_t n) {
  return dot_block_ref(as_q4(w), as_q8(x), n);
}

float dot_q8_0_block_ref(const uint8_t* w, const uint8_t* x, int64_t n) {
  return dot_block_ref(as_q8(w), as_q8(x), n);
}

void quantize_activations_q8_0_fast(const float* x, BlockQ8_0* y, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return quantize_q8_0_avx2(x, y, n);
#endif
#ifdef PARETO_QUANT_NEON
  return quantize_activations_q8_0_neon(x, y, n);
#endif
  quantize_activations_q8_0(x, y, n);
}

void f32_to_f16_row_fast(const float* x, uint16_t* y, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return f32_to_f16_row_avx2(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

float dot_q8_0_lanes_fast(const uint8_t* w, const uint8_t* x, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return dot_avx2<false, BlockQ8_0>(w, x, n);
#endif
#ifdef PARETO_QUANT_NEON
  return dot_q8_0_lanes_neon(w, x, n, quant_neon_sdot_supported());
#endif
  return dot_q8_0_lanes_ref(w, x, n);
}

float dot_q4_0_lanes_fast(const uint8_t* w, const uint8_t* x, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return dot_avx2<false, BlockQ4_0>(w, x, n);
#endif
#ifdef PARETO_QUANT_NEON
  return dot_q4_0_lanes_neon(w, x, n, quant_neon_sdot_supported());
#endif
  return dot_q4_0_lanes_ref(w, x, n);
}

float dot_q4_0_repacked_fast(const uint8_t* w, const uint8_t* x, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return dot_avx2<true, BlockQ4_0>(w, x, n);
#endif
#ifdef PARETO_QUANT_NEON
  return dot_q4_0_repacked_neon(w, x, n, quant_neon_sdot_supported());
#endif
  return dot_q4_0_repacked_ref(w, x, n);
}

float dot_q8_0_block_fast(const uint8_t* w, const uint8_t* x, int64_t n) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return dot_avx2<true, BlockQ8_0>(w, x, n);
#endif
  return dot_q8_0_block_ref(w, x, n);
}

void matmul_q8_0_block_rows_fast(const WeightView& w, const PreparedActivations& x,
                                 int64_t row_begin, int64_t row_end, float* y) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return rows_repacked_avx2<BlockQ8_0>(w, x, row_begin, row_end, y);
#endif
  rows_ref<dot_q8_0_block_ref>(w, x, row_begin, row_end, y);
}

void matmul_q8_0_rows_fast(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y) {
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) return rows_avx2<false, BlockQ8_0>(w, x, row_begin, row_end, y);
#endif
#ifdef PARETO_QUANT_NEON
  return matmul_q8_0_rows_neon(w, x, row_begin, row_end, y, quant_neon_sdot_supported());
#endif
  rows_ref<dot_q8_0_lanes_ref>(w, x, row_begin, row_end, y);
}

void matmul_q4_0_rows_fast(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y) {
  // llama.cpp repacks Q4_0 matrices whose row count is a multiple of 8 (x86 AVX2 and AVX-512).
  const bool repacked = w.rows % 8 == 0;
#ifdef PARETO_QUANT_SIMD_X86
  if (has_avx2_fma_f16c()) {
    return repacked ? rows_repacked_avx2<BlockQ4_0>(w, x, row_begin, row_end, y)
                    : rows_avx2<false, BlockQ4_0>(w, x, row_begin, row_end, y);
  }
#endif
#ifdef PARETO_QUANT_NEON
  return matmul_q4_0_rows_neon(w, x, row_begin, row_end, y, quant_neon_sdot_supported());
#endif
  if (repacked) return rows_ref<dot_q4_0_repacked_ref>(w, x, row_begin, row_end, y);
  rows_ref<dot_q4_0_lanes_ref>(w, x, row_begin, row_end, y);
}

}  // namespace pareto::kernels
