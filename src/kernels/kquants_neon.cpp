// NEON (AArch64) versions of the K-quant x Q8_K dot products in llama.cpp's x86 AVX2 order and of
// the Q8_K activation quantizer, bit-identical to kquants.cpp (dot_kquant_q8k_ref,
// quantize_row_q8_K_ref).
// Dots: lane k of each 32-element chunk is the scaled integer sum of its elements 4k..4k+3, summed
// over the chunks of a 256-block into 8 int32 lanes (two int32x4_t); per block one f32 product
// d = y.d * x.d and one fused multiply-add per lane, the mins as in the AVX2 routine, then
// hsum_float_8. The integer work is exact: products by vmull_s8 (|q * y| <= 32 * 128), pair and
// quad sums in int16 (4 products <= 2^14), the sub-block scale applied widening (vmlal_n_s16).
// With the dot-product extension (as kernels_quant_neon.cpp decides: quant_neon_sdot_supported())
// SDOT gives the unscaled quads of a 16-element half chunk as int32 lanes directly, and the scale
// is applied by vmlaq_n_s32.
// Each weight super-block is first unpacked to int8 quants in element order plus 16 group scales
// (a 256-byte stack buffer); the matmul rows (prefill) unpack it once for 4 tokens.
// Q8_K quantization: the same max search (first element of largest magnitude), the same float
// product iscale * x, the same nearest_int bit trick and 1 / iscale.
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/check.h"

namespace pareto::kernels {
namespace {

constexpr float kRoundShift = 12582912.f;  // 1.5 * 2^23: kquant_nearest_int's shift

// SDOT, as in kernels_quant_neon.cpp (see there): acc[t] += sum of a[4t + i] * b[4t + i].
#if defined(__ARM_FEATURE_DOTPROD)
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  return vdotq_s32(acc, a, b);
}
#elif !defined(__ARM_FEATURE_SVE)
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  asm(".arch armv8.2-a+dotprod\n\tsdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
  return acc;
}
#else  // never selected (quant_neon_sdot_supported() is false); exact NEON equivalent
inline int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
  const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t p1 = vmull_high_s8(a, b);
  return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
}
#endif

inline float half_to_float(uint16_t h) {
  return static_cast<float>(std::bit_cast<__fp16>(h));
}

// ggml::hsum8 of the lanes (lo = 0..3, hi = 4..7): s_i = v_i + v_{i+4}, (s0 + s2) + (s1 + s3).
inline float hsum8(float32x4_t lo, float32x4_t hi) {
  const float32x4_t s = vaddq_f32(lo, hi);
  const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
  return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

// The 8 quad sums of one 32-element chunk: lane k = sum of w[e] * x[e], e in [4k, 4k + 4).
// |w| <= 32 and |x| <= 128: a quad is at most 2^14 in magnitude.
inline int16x8_t chunk_quads(int8x16_t w0, int8x16_t w1, const int8_t* x) {
  const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
  const int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0));
  const int16x8_t p1 = vmull_high_s8(w0, x0);
  const int16x8_t p2 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1));
  const int16x8_t p3 = vmull_high_s8(w1, x1);
  return vpaddq_s16(vpaddq_s16(p0, p1), vpaddq_s16(p2, p3));
}

// Scaled int32 lanes: lo = lanes 0..3, hi = 4..7.
template <bool kDot>
struct Lanes {
  int32x4_t lo = vdupq_n_s32(0), hi = vdupq_n_s32(0);
  // Adds chunk (w0: elements 0..15, w1: 16..31) x (x: 32 Q8_K values), lanes 0..3 scaled by
  // scale_lo and 4..7 by scale_hi.
  void add(int8x16_t w0, int8x16_t w1, const int8_t* x, int16_t scale_lo, int16_t scale_hi) {
    if constexpr (kDot) {
      const int32x4_t zero = vdupq_n_s32(0);
      lo = vmlaq_n_s32(lo, sdot(zero, w0, vld1q_s8(x)), scale_lo);
      hi = vmlaq_n_s32(hi, sdot(zero, w1, vld1q_s8(x + 16)), scale_hi);
    } else {
      const int16x8_t quads = chunk_quads(w0, w1, x);
      lo = vmlal_n_s16(lo, vget_low_s16(quads), scale_lo);
      hi = vmlal_high_n_s16(hi, quads, scale_hi);
    }
  }
};

// Sub-block scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K / Q5_K block, as
// kquant_scale_min unpacks them (ggml's kmask trick on the 12 packed bytes).
inline void unpack_scales_mins(const uint8_t* packed, uint8_t (&out)[16]) {
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, packed, kKScaleBytes);
  u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
  const uint32_t mins_lo = u[1] & kMask1;
  u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  u[2] = mins_lo;
  u[0] &= kMask1;
  std::memcpy(out, u, sizeof(u));
}

// One weight super-block unpacked for the integer work: quants in element order as int8 (Q6_K:
// minus 32), the scale of each 16-element group, and (Q4_K / Q5_K) the 8 sub-block mins. Prefill
// unpacks a block once for several tokens.
struct Unpacked {
  alignas(16) int8_t q[kQK_K];
  int16_t scale[kQK_K / 16];
  uint8_t mins[8];
  float d = 0.0f, dmin = 0.0f;  // the fp16 super-block scales
};

// Q4_K and Q5_K: chunk c of 64 elements = low nibbles (sub-block 2c) then high nibbles (2c + 1) of
// qs[32c .. 32c + 32); Q5_K adds bit 2c / 2c + 1 of qh[l] as bit 4.
template <class Block>
inline void unpack(const Block& x, Unpacked& u) {
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const uint8x16_t bit4 = vdupq_n_u8(0x10);
  uint8_t sm[16];
  unpack_scales_mins(x.scales, sm);
  for (int g = 0; g < kQK_K / 16; ++g) u.scale[g] = sm[g / 2];
  std::memcpy(u.mins, sm + 8, sizeof(u.mins));
  u.d = half_to_float(x.d);
  u.dmin = half_to_float(x.dmin);
  uint8x16_t hb[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};  // qh >> 2c
  if constexpr (std::is_same_v<Block, BlockQ5_K>)
    hb[0] = vld1q_u8(x.qh), hb[1] = vld1q_u8(x.qh + 16);
  for (int c = 0; c < 4; ++c) {
    for (int v = 0; v < 2; ++v) {
      const uint8x16_t q = vld1q_u8(x.qs + 32 * c + 16 * v);
      uint8x16_t lo = vandq_u8(q, low4), hi = vshrq_n_u8(q, 4);
      if constexpr (std::is_same_v<Block, BlockQ5_K>) {
        lo = vorrq_u8(lo, vandq_u8(vshlq_n_u8(hb[v], 4), bit4));
        hi = vorrq_u8(hi, vandq_u8(vshlq_n_u8(hb[v], 3), bit4));
        hb[v] = vshrq_n_u8(hb[v], 2);
      }
      vst1q_s8(u.q + 64 * c + 16 * v, vreinterpretq_s8_u8(lo));
      vst1q_s8(u.q + 64 * c + 32 + 16 * v, vreinterpretq_s8_u8(hi));
    }
  }
}

// Q6_K: half h of 128 elements, chunk j of 32: low nibbles of ql[64h + 32(j % 2) ..] (j < 2) or
// high nibbles (j >= 2), bits 2j, 2j + 1 of qh[32h ..] as bits 4-5; minus 32.
inline void unpack(const BlockQ6_K& x, Unpacked& u) {
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const uint8x16_t bits45 = vdupq_n_u8(0x30);
  const int8x16_t m32 = vdupq_n_s8(32);
  for (int g = 0; g < kQK_K / 16; ++g) u.scale[g] = x.scales[g];
  u.d = half_to_float(x.d);
  for (int h = 0; h < 2; ++h) {
    for (int v = 0; v < 2; ++v) {
      const uint8x16_t ql0 = vld1q_u8(x.ql + 64 * h + 16 * v);
      const uint8x16_t ql1 = vld1q_u8(x.ql + 64 * h + 32 + 16 * v);
      const uint8x16_t qh = vld1q_u8(x.qh + 32 * h + 16 * v);
      const uint8x16_t lq[4] = {vandq_u8(ql0, low4), vandq_u8(ql1, low4), vshrq_n_u8(ql0, 4),
                                vshrq_n_u8(ql1, 4)};
      const uint8x16_t hq[4] = {vshlq_n_u8(qh, 4), vshlq_n_u8(qh, 2), qh, vshrq_n_u8(qh, 2)};
      for (int j = 0; j < 4; ++j) {
        const uint8x16_t q = vorrq_u8(lq[j], vandq_u8(hq[j], bits45));
        vst1q_s8(u.q + 128 * h + 32 * j + 16 * v, vsubq_s8(vreinterpretq_s8_u8(q), m32));
      }
    }
  }
}

// The 8 scaled integer lanes of one super-block against one Q8_K block (two chains).
template <bool kDot>
inline Lanes<kDot> block_lanes(const Unpacked& u, const int8_t* y) {
  Lanes<kDot> sum[2];
  for (int c = 0; c < kQK_K / 32; ++c) {
    sum[c % 2].add(vld1q_s8(u.q + 32 * c), vld1q_s8(u.q + 32 * c + 16), y + 32 * c, u.scale[2 * c],
                   u.scale[2 * c + 1]);
  }
  sum[0].lo = vaddq_s32(sum[0].lo, sum[1].lo);
  sum[0].hi = vaddq_s32(sum[0].hi, sum[1].hi);
  return sum[0];
}

// The float state of one output in llama.cpp's AVX2 order: 8 lanes, and the Q4_K (4 lanes) or
// Q5_K (one float) mins.
template <class Block>
struct Accumulator {
  float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
  float32x4_t m = vdupq_n_f32(0.0f);  // Q4_K
  float summs = 0.0f;                 // Q5_K

  template <bool kDot>
  void add(const Unpacked& u, const BlockQ8_K& y) {
    const Lanes<kDot> s = block_lanes<kDot>(u, y.qs);
    const float d = y.d * u.d;
    lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s.lo), d);
    hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s.hi), d);
    if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
      // prod[m] = min[2m] * (bs[4m] + bs[4m+1]) + min[2m+1] * (bs[4m+2] + bs[4m+3]).
      const float dmin = -y.d * u.dmin;
      const int16x8_t pairs = vpaddq_s16(vld1q_s16(y.bsums), vld1q_s16(y.bsums + 8));
      const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(u.mins)));
      const int32x4_t prod = vpaddq_s32(vmull_s16(vget_low_s16(pairs), vget_low_s16(mins)),
                                        vmull_high_s16(pairs, mins));
      if constexpr (std::is_same_v<Block, BlockQ5_K>) {
        summs = std::fma(dmin, static_cast<float>(vaddvq_s32(prod)), summs);
      } else {
        m = vfmaq_n_f32(m, vcvtq_f32_s32(prod), dmin);
      }
    }
  }

  float finish() const {
    if constexpr (std::is_same_v<Block, BlockQ4_K>) {
      const float32x2_t m2 = vadd_f32(vget_low_f32(m), vget_high_f32(m));  // m0+m2, m1+m3
      return hsum8(lo, hi) + (vget_lane_f32(m2, 0) + vget_lane_f32(m2, 1));
    } else if constexpr (std::is_same_v<Block, BlockQ5_K>) {
      return hsum8(lo, hi) + summs;
    } else {
      return hsum8(lo, hi);
    }
  }
};

template <class Block, bool kDot>
float dot(const Block* x, const BlockQ8_K* y, int64_t nb) {
  Unpacked u;
  Accumulator<Block> acc;
  for (int64_t i = 0; i < nb; ++i) {
    unpack(x[i], u);
    acc.template add<kDot>(u, y[i]);
  }
  return acc.finish();
}

template <class Block>
float dot_dispatch(const Block* x, const BlockQ8_K* y, int64_t nb, bool sdot) {
  return sdot ? dot<Block, true>(x, y, nb) : dot<Block, false>(x, y, nb);
}

constexpr int kTokenTile = 4;  // tokens sharing one unpacked weight super-block (prefill)

// One weight row x NT tokens; each super-block is unpacked once. out[k * out_stride].
template <class Block, bool kDot, int NT>
void row_tile(const Block* x, const BlockQ8_K* const* ys, int64_t nb, float* out,
              int64_t out_stride) {
  Unpacked u;
  Accumulator<Block> acc[NT];
  for (int64_t i = 0; i < nb; ++i) {
    unpack(x[i], u);
    for (int k = 0; k < NT; ++k) acc[k].template add<kDot>(u, ys[k][i]);
  }
  for (int k = 0; k < NT; ++k) out[k * out_stride] = acc[k].finish();
}

template <class Block, bool kDot>
void rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin, int64_t row_end,
          float* y) {
  const int64_t nb = w.cols / kQK_K;
  const auto token = [&](int64_t t) { return reinterpret_cast<const BlockQ8_K*>(x.row(t)); };
  const BlockQ8_K* ys[kTokenTile];
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto* wr = reinterpret_cast<const Block*>(w.row(r));
    int64_t t = 0;
    for (; t + kTokenTile <= x.n_tokens; t += kTokenTile) {
      for (int k = 0; k < kTokenTile; ++k) ys[k] = token(t + k);
      row_tile<Block, kDot, kTokenTile>(wr, ys, nb, y + t * w.rows + r, w.rows);
    }
    for (; t < x.n_tokens; ++t) {
      ys[0] = token(t);
      row_tile<Block, kDot, 1>(wr, ys, nb, y + t * w.rows + r, w.rows);
    }
  }
}

template <class Block>
void rows_dispatch(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                   int64_t row_end, float* y, bool sdot) {
  if (sdot) return rows<Block, true>(w, x, row_begin, row_end, y);
  rows<Block, false>(w, x, row_begin, row_end, y);
}

}  // namespace

float dot_q4_K_q8_K_neon(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot) {
  return dot_dispatch(x, y, n_blocks, sdot);
}

float dot_q5_K_q8_K_neon(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot) {
  return dot_dispatch(x, y, n_blocks, sdot);
}

float dot_q6_K_q8_K_neon(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n_blocks, bool sdot) {
  return dot_dispatch(x, y, n_blocks, sdot);
}

void matmul_kquant_rows_neon(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                             int64_t row_end, float* y, bool sdot) {
  PARETO_CHECK_MSG(w.cols % kQK_K == 0, "K-quant row length must be a multiple of 256");
  switch (w.type) {
    case TensorType::Q4_K:
      return rows_dispatch<BlockQ4_K>(w, x, row_begin, row_end, y, sdot);
    case TensorType::Q5_K:
      return rows_dispatch<BlockQ5_K>(w, x, row_begin, row_end, y, sdot);
    case TensorType::Q6_K:
      return rows_dispatch<BlockQ6_K>(w, x, row_begin, row_end, y, sdot);
    default:
      PARETO_CHECK_MSG(false, "matmul_kquant_rows: not a K-quant type");
  }
}

void quantize_row_q8_K_neon(const float* x, BlockQ8_K* y, int64_t n_blocks) {
  const int32x4_t mant = vdupq_n_s32(0x007fffff);
  const int32x4_t bias = vdupq_n_s32(0x00400000);
  const int32x4_t q127 = vdupq_n_s32(127);
  constexpr int kVecs = kQK_K / 4;
  for (int64_t i = 0; i < n_blocks; ++i, x += kQK_K) {
    // vmaxnm skips NaNs as the reference's `ax > amax` does; an all-NaN block gives 0 as there.
    float32x4_t amax_v = vdupq_n_f32(0.0f);
    for (int k = 0; k < kVecs; ++k) amax_v = vmaxnmq_f32(amax_v, vabsq_f32(vld1q_f32(x + 4 * k)));
    const float amax = vmaxnmvq_f32(amax_v);
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    // The reference keeps the first element whose magnitude is amax.
    float max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) == amax) {
        max = x[j];
        break;
      }
    }
    const float iscale = -127.f / max;
    for (int g = 0; g < kQK_K / 16; ++g) {
      int16x8_t q16[2];
      for (int h = 0; h < 2; ++h) {
        int32x4_t v[2];
        for (int e = 0; e < 2; ++e) {
          // nearest_int(iscale * x): the product, then + 1.5 * 2^23, mantissa bits - 2^22.
          const float32x4_t shifted = vaddq_f32(
              vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * h + 4 * e), iscale), vdupq_n_f32(kRoundShift));
          v[e] = vminq_s32(vsubq_s32(vandq_s32(vreinterpretq_s32_f32(shifted), mant), bias), q127);
        }
        q16[h] = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
      }
      // Truncating narrows, as the reference's cast to int8; bsums sum the stored bytes.
      const int8x16_t q8 = vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1]));
      vst1q_s8(y[i].qs + 16 * g, q8);
      y[i].bsums[g] = vaddlvq_s8(q8);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace pareto::kernels

#endif
