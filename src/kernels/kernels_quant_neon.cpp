// NEON (AArch64) versions of the Q8_0 / Q4_0 kernels, bit-identical to the lane loops of
// kernels_quant_simd.cpp (see kernels_quant_simd.h). The AVX2 8-float vector of llama.cpp's order
// is two float32x4_t (lanes 0..3, 4..7); per 32-block the float work is one f32 product of two
// exactly converted fp16 scales and one fused multiply-add per lane (vfmaq_n_f32), then ggml's
// hsum_float_8 tree. The integer sums are exact in any order: products come from widening
// multiplies (vmull_s8, exact in int16) and are summed in int16 only where the bound allows it
// (Q4_0: |w| <= 8, so 16 products stay below 2^14), else widened to int32 first (Q8_0: w = -128
// times x = -128 would overflow an int16 pair sum).
// With the dot-product extension (SDOT, ARMv8.2; detected at run time through AT_HWCAP) one SDOT
// gives 4 lanes directly: lane t of sdot(w, x) is the sum of elements 4t..4t+3, exactly the lane
// layout of llama.cpp's AVX2 order. It is emitted by inline assembly so that the same templates
// (kDot) serve both forms without a second target-specific copy.
// Tiling: prefill reads each weight block once for 4 tokens; decode (fewer than 4 tokens) runs 4
// rows (lanes order) or 8 rows (repacked order) at once, for independent accumulator chains.
#include "kernels/kernels_quant_simd.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

#include <sys/auxv.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <type_traits>

#include "base/check.h"
#include "base/half.h"

namespace pareto::kernels {
namespace {

constexpr int kTokenTile = 4;   // tokens sharing one load of a weight block (prefill)
constexpr int kDecodeRows = 4;  // rows per pass when tokens are fewer than kTokenTile (lanes)
constexpr int kGroupRows = 8;   // llama.cpp's repacked row group (Q4_0 rows % 8 == 0)

constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP (asm/hwcap.h)

// acc[t] += sum of a[4t + i] * b[4t + i], i < 4: SDOT. Built for the dot-product extension, the
// intrinsic; for baseline ARMv8.0, inline assembly that raises the assembler's architecture to
// ARMv8.2 + dotprod (a superset of what the compiler emits for such a build), run only when the
// CPU reports the extension. Built for SVE without dotprod (an unusual combination whose
// generated code ARMv8.2 would not cover), an exact NEON equivalent, never selected.
#if defined(__ARM_FEATURE_DOTPROD)
constexpr bool kSdotBuilt = true;
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  return vdotq_s32(acc, a, b);
}
#elif !defined(__ARM_FEATURE_SVE)
constexpr bool kSdotBuilt = true;
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  asm(".arch armv8.2-a+dotprod\n\tsdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
  return acc;
}
#else
constexpr bool kSdotBuilt = false;
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t p1 = vmull_high_s8(a, b);
  return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
}
#endif

bool cpu_has_dotprod() {
#if defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  static const bool has = kSdotBuilt && (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
  return has;
#endif
}

const BlockQ8_0* as_q8(const uint8_t* p) {
  return reinterpret_cast<const BlockQ8_0*>(p);
}

// Exact fp16 -> f32 (FCVT; NaN payloads aside, identical to f16_to_f32).
inline float half_to_float(uint16_t h) {
  return static_cast<float>(std::bit_cast<__fp16>(h));
}

// One 32-element block as signed bytes: lo = elements 0..15, hi = 16..31.
struct Quants {
  int8x16_t lo, hi;
};

inline Quants load_quants(const BlockQ8_0& b) {
  return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)};
}

// Q4_0: elements 0..15 are the low nibbles, 16..31 the high nibbles, minus 8.
inline Quants load_quants(const BlockQ4_0& b) {
  const uint8x16_t q = vld1q_u8(b.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight),
          vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight)};
}

// The 8 integer lanes of one block (lane t = sum of elements 4t..4t+3) as two int32x4_t.
struct LaneSums {
  int32x4_t lo, hi;
};

template <class WeightBlock, bool kDot>
inline LaneSums lane_sums(const Quants& w, const Quants& x) {
  if constexpr (kDot) {
    const int32x4_t zero = vdupq_n_s32(0);
    return {sdot(zero, w.lo, x.lo), sdot(zero, w.hi, x.hi)};
  }
  const int16x8_t p0 = vmull_s8(vget_low_s8(w.lo), vget_low_s8(x.lo));  // elements 0..7
  const int16x8_t p1 = vmull_high_s8(w.lo, x.lo);                       // 8..15
  const int16x8_t p2 = vmull_s8(vget_low_s8(w.hi), vget_low_s8(x.hi));  // 16..23
  const int16x8_t p3 = vmull_high_s8(w.hi, x.hi);                       // 24..31
  if constexpr (std::is_same_v<WeightBlock, BlockQ4_0>) {
    // |p| <= 8 * 128: pair sums in int16, then pairs of pairs widened.
    return {vpaddlq_s16(vpaddq_s16(p0, p1)), vpaddlq_s16(vpaddq_s16(p2, p3))};
  } else {
    return {vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)),
            vpaddq_s32(vpaddlq_s16(p2), vpaddlq_s16(p3))};
  }
}

// Sum of all 32 products of a Q4_0 block, as 8 int16 partial sums (|sum| <= 4 * 8 * 128).
inline int16x8_t q4_block_partials(const Quants& w, const Quants& x) {
  int16x8_t p = vmull_s8(vget_low_s8(w.lo), vget_low_s8(x.lo));
  p = vmlal_high_s8(p, w.lo, x.lo);
  p = vmlal_s8(p, vget_low_s8(w.hi), vget_low_s8(x.hi));
  return vmlal_high_s8(p, w.hi, x.hi);
}

// The same sum as 4 int32 partial sums (SDOT).
inline int32x4_t q4_block_partials_dot(const Quants& w, const Quants& x) {
  return sdot(sdot(vdupq_n_s32(0), w.lo, x.lo), w.hi, x.hi);
}

template <bool kDot>
inline int32_t q4_block_sum(const Quants& w, const Quants& x) {
  if constexpr (kDot) return vaddvq_s32(q4_block_partials_dot(w, x));
  return vaddlvq_s16(q4_block_partials(w, x));
}

// ggml::hsum8 of the lanes (lo = 0..3, hi = 4..7): s_i = v_i + v_{i+4}, (s0 + s2) + (s1 + s3).
inline float hsum8(float32x4_t lo, float32x4_t hi) {
  const float32x4_t s = vaddq_f32(lo, hi);
  const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
  return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

// NR consecutive weight rows x NT tokens, lanes order: acc = fma(d_w * d_x, lane, acc) per block.
// out[k * out_stride + r] for token k, row r.
template <class WeightBlock, bool kDot, int NR, int NT>
inline void lanes_tile(const WeightBlock* const* wb, const BlockQ8_0* const* xs, int64_t n_blocks,
                       float* out, int64_t out_stride) {
  float32x4_t acc_lo[NR][NT], acc_hi[NR][NT];
  for (int r = 0; r < NR; ++r) {
    for (int k = 0; k < NT; ++k) acc_lo[r][k] = acc_hi[r][k] = vdupq_n_f32(0.0f);
  }
  for (int64_t b = 0; b < n_blocks; ++b) {
    Quants xq[NT];
    float dx[NT];
    for (int k = 0; k < NT; ++k) {
      xq[k] = load_quants(xs[k][b]);
      dx[k] = half_to_float(xs[k][b].d);
    }
    for (int r = 0; r < NR; ++r) {
      const Quants wq = load_quants(wb[r][b]);
      const float dw = half_to_float(wb[r][b].d);
      for (int k = 0; k < NT; ++k) {
        const float d = dw * dx[k];
        const LaneSums s = lane_sums<WeightBlock, kDot>(wq, xq[k]);
        acc_lo[r][k] = vfmaq_n_f32(acc_lo[r][k], vcvtq_f32_s32(s.lo), d);
        acc_hi[r][k] = vfmaq_n_f32(acc_hi[r][k], vcvtq_f32_s32(s.hi), d);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int k = 0; k < NT; ++k) out[k * out_stride + r] = hsum8(acc_lo[r][k], acc_hi[r][k]);
  }
}

// One Q4_0 row x NT tokens, repacked order: acc = fma((float)block_sum, d_w * d_x, acc).
template <bool kDot, int NT>
inline void repacked_tile(const BlockQ4_0* wb, const BlockQ8_0* const* xs, int64_t n_blocks,
                          float* out, int64_t out_stride) {
  float acc[NT] = {};
  for (int64_t b = 0; b < n_blocks; ++b) {
    const Quants wq = load_quants(wb[b]);
    const float dw = half_to_float(wb[b].d);
    for (int k = 0; k < NT; ++k) {
      const int32_t s = q4_block_sum<kDot>(wq, load_quants(xs[k][b]));
      acc[k] = std::fma(static_cast<float>(s), dw * half_to_float(xs[k][b].d), acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) out[k * out_stride] = acc[k];
}

// Block sums of 4 rows against one token block, as one int32x4_t (lane r = row r). Without SDOT:
// pairwise int16 adds while |sum| <= 16 * 8 * 128, then widened.
template <bool kDot>
inline int32x4_t row_sums4(const Quants* w, const Quants& x) {
  if constexpr (kDot) {
    int32x4_t p[4];
    for (int r = 0; r < 4; ++r) p[r] = q4_block_partials_dot(w[r], x);
    return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
  } else {
    int16x8_t p[4];
    for (int r = 0; r < 4; ++r) p[r] = q4_block_partials(w[r], x);
    return vpaddlq_s16(vpaddq_s16(vpaddq_s16(p[0], p[1]), vpaddq_s16(p[2], p[3])));
  }
}

// 8 Q4_0 rows x NT tokens, repacked order with one float lane per row, as
// ggml_gemv/gemm_q4_0_8x8_q8_0: acc[r] = fma((float)s_r, d_w[r] * d_x, acc[r]).
template <bool kDot, int NT>
inline void repacked_8rows(const BlockQ4_0* const (&wb)[kGroupRows], const BlockQ8_0* const* xs,
                           int64_t n_blocks, float* out, int64_t out_stride) {
  float32x4_t acc_lo[NT], acc_hi[NT];
  for (int k = 0; k < NT; ++k) acc_lo[k] = acc_hi[k] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < n_blocks; ++b) {
    Quants wq[kGroupRows];
    uint16_t dw_bits[kGroupRows];
    for (int r = 0; r < kGroupRows; ++r) {
      wq[r] = load_quants(wb[r][b]);
      dw_bits[r] = wb[r][b].d;
    }
    const float16x8_t dw_h = vreinterpretq_f16_u16(vld1q_u16(dw_bits));
    const float32x4_t dw_lo = vcvt_f32_f16(vget_low_f16(dw_h));
    const float32x4_t dw_hi = vcvt_high_f32_f16(dw_h);
    for (int k = 0; k < NT; ++k) {
      const Quants xq = load_quants(xs[k][b]);
      const float32x4_t s_lo = vcvtq_f32_s32(row_sums4<kDot>(wq, xq));
      const float32x4_t s_hi = vcvtq_f32_s32(row_sums4<kDot>(wq + 4, xq));
      const float dx = half_to_float(xs[k][b].d);
      acc_lo[k] = vfmaq_f32(acc_lo[k], s_lo, vmulq_n_f32(dw_lo, dx));
      acc_hi[k] = vfmaq_f32(acc_hi[k], s_hi, vmulq_n_f32(dw_hi, dx));
    }
  }
  for (int k = 0; k < NT; ++k) {
    vst1q_f32(out + k * out_stride, acc_lo[k]);
    vst1q_f32(out + k * out_stride + 4, acc_hi[k]);
  }
}

template <class WeightBlock, bool kDot>
void rows_lanes(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                int64_t row_end, float* y) {
  const int64_t n_blocks = w.cols / kQuantBlock;
  const auto row = [&](int64_t r) { return reinterpret_cast<const WeightBlock*>(w.row(r)); };
  const BlockQ8_0* xs[kTokenTile];
  if (x.n_tokens < kTokenTile) {  // decode: rows side by side
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      xs[0] = as_q8(x.row(t));
      float* yt = y + t * w.rows;
      int64_t r = row_begin;
      for (; r + kDecodeRows <= row_end; r += kDecodeRows) {
        const WeightBlock* wb[kDecodeRows];
        for (int i = 0; i < kDecodeRows; ++i) wb[i] = row(r + i);
        lanes_tile<WeightBlock, kDot, kDecodeRows, 1>(wb, xs, n_blocks, yt + r, w.rows);
      }
      for (; r < row_end; ++r) {
        const WeightBlock* wb[1] = {row(r)};
        lanes_tile<WeightBlock, kDot, 1, 1>(wb, xs, n_blocks, yt + r, w.rows);
      }
    }
    return;
  }
  for (int64_t r = row_begin; r < row_end; ++r) {  // prefill: tokens side by side
    const WeightBlock* wb[1] = {row(r)};
    int64_t t = 0;
    for (; t + kTokenTile <= x.n_tokens; t += kTokenTile) {
      for (int k = 0; k < kTokenTile; ++k) xs[k] = as_q8(x.row(t + k));
      lanes_tile<WeightBlock, kDot, 1, kTokenTile>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
    for (; t < x.n_tokens; ++t) {
      xs[0] = as_q8(x.row(t));
      lanes_tile<WeightBlock, kDot, 1, 1>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
  }
}

// Repacked Q4_0 rows in groups of 8 (llama.cpp repacks only when rows % 8 == 0); a partial group
// at either end of the range goes row by row.
template <bool kDot>
void rows_repacked(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                   int64_t row_end, float* y) {
  const int64_t n_blocks = w.cols / kQuantBlock;
  const auto row = [&](int64_t r) { return reinterpret_cast<const BlockQ4_0*>(w.row(r)); };
  const BlockQ8_0* xs[kTokenTile];
  int64_t r = row_begin;
  const auto single_rows = [&](int64_t end) {
    for (; r < end; ++r) {
      for (int64_t t = 0; t < x.n_tokens; ++t) {
        xs[0] = as_q8(x.row(t));
        repacked_tile<kDot, 1>(row(r), xs, n_blocks, y + t * w.rows + r, w.rows);
      }
    }
  };
  single_rows(std::min(row_end, (row_begin + kGroupRows - 1) / kGroupRows * kGroupRows));
  for (; r + kGroupRows <= row_end; r += kGroupRows) {
    const BlockQ4_0* wb[kGroupRows];
    for (int i = 0; i < kGroupRows; ++i) wb[i] = row(r + i);
    int64_t t = 0;
    for (; t + kTokenTile <= x.n_tokens; t += kTokenTile) {
      for (int k = 0; k < kTokenTile; ++k) xs[k] = as_q8(x.row(t + k));
      repacked_8rows<kDot, kTokenTile>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
    for (; t < x.n_tokens; ++t) {
      xs[0] = as_q8(x.row(t));
      repacked_8rows<kDot, 1>(wb, xs, n_blocks, y + t * w.rows + r, w.rows);
    }
  }
  single_rows(row_end);
}

template <class WeightBlock>
float dot_lanes(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  const WeightBlock* wb[1] = {reinterpret_cast<const WeightBlock*>(w)};
  const BlockQ8_0* xs[1] = {as_q8(x)};
  float out = 0.0f;
  if (sdot) {
    lanes_tile<WeightBlock, true, 1, 1>(wb, xs, n / kQuantBlock, &out, 1);
  } else {
    lanes_tile<WeightBlock, false, 1, 1>(wb, xs, n / kQuantBlock, &out, 1);
  }
  return out;
}

}  // namespace

bool quant_neon_available() {
  return true;
}

bool quant_neon_sdot_supported() {
  return cpu_has_dotprod();
}

// llama.cpp's quantize_row_q8_0 (as quantize_activations_q8_0): amax by vector max (exact in any
// order; vmaxnm skips NaNs as std::max(amax, |x|) does), d = amax / 127 rounded to fp16,
// q = round-half-even(x * (127 / amax)) (vcvtnq: to nearest, ties to even).
void quantize_activations_q8_0_neon(const float* x, BlockQ8_0* y, int64_t n) {
  PARETO_CHECK(n % kQuantBlock == 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; ++i) {
      v[i] = vld1q_f32(xb + 4 * i);
      m = vmaxnmq_f32(m, vabsq_f32(v[i]));
    }
    const float amax = vmaxnmvq_f32(m);
    y[b].d = f32_to_f16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int16x8_t q16[4];
    for (int i = 0; i < 4; ++i) {
      const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], id));
      const int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], id));
      q16[i] = vcombine_s16(vmovn_s32(a), vmovn_s32(c));
    }
    vst1q_s8(y[b].qs, vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1])));
    vst1q_s8(y[b].qs + 16, vcombine_s8(vmovn_s16(q16[2]), vmovn_s16(q16[3])));
  }
}

float dot_q8_0_lanes_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  return dot_lanes<BlockQ8_0>(w, x, n, sdot);
}

float dot_q4_0_lanes_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  return dot_lanes<BlockQ4_0>(w, x, n, sdot);
}

float dot_q4_0_repacked_neon(const uint8_t* w, const uint8_t* x, int64_t n, bool sdot) {
  const BlockQ8_0* xs[1] = {as_q8(x)};
  float out = 0.0f;
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  if (sdot) {
    repacked_tile<true, 1>(wb, xs, n / kQuantBlock, &out, 1);
  } else {
    repacked_tile<false, 1>(wb, xs, n / kQuantBlock, &out, 1);
  }
  return out;
}

void matmul_q8_0_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y, bool sdot) {
  if (sdot) return rows_lanes<BlockQ8_0, true>(w, x, row_begin, row_end, y);
  rows_lanes<BlockQ8_0, false>(w, x, row_begin, row_end, y);
}

void matmul_q4_0_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                           int64_t row_end, float* y, bool sdot) {
  // llama.cpp repacks Q4_0 matrices whose row count is a multiple of 8 (on x86, whose order the
  // default path reproduces).
  const bool dot = sdot;
  if (w.rows % kGroupRows == 0) {
    return dot ? rows_repacked<true>(w, x, row_begin, row_end, y)
               : rows_repacked<false>(w, x, row_begin, row_end, y);
  }
  if (dot) return rows_lanes<BlockQ4_0, true>(w, x, row_begin, row_end, y);
  rows_lanes<BlockQ4_0, false>(w, x, row_begin, row_end, y);
}

}  // namespace pareto::kernels

#else  // no NEON

namespace pareto::kernels {
bool quant_neon_available() {
  return false;
}
bool quant_neon_sdot_supported() {
  return false;
}
}  // namespace pareto::kernels

#endif
