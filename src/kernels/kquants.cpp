// K-quant dequantization, Q8_K activation quantization and the K-quant x Q8_K dot products.
// The integer part of a block's dot product is exact, so both flavours compute it the same way
// (per position modulo 32, a layout compilers vectorize) and then fold it into the lanes of the
// float order they reproduce.
#include "kernels/kquants.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/check.h"
#include "base/half.h"
#include "kernels/ggml_math.h"
#include "kernels/kernels_quant_simd.h"

// The fast dot products are also compiled for AVX2+FMA and picked at run time (x86-64 GCC/Clang):
// the integer loops vectorize wider and std::fma becomes one instruction. The float ops in that
// path are only explicit fmas and additions, so FP contraction cannot change them.
#if defined(__x86_64__) && defined(__GNUC__)
#define PARETO_KQUANT_X86_DISPATCH 1
#endif
// On AArch64 the NEON versions run (kquants_neon.cpp); identical bits.
#if defined(__aarch64__) && defined(__ARM_NEON)
#define PARETO_KQUANT_NEON 1
#endif

namespace pareto::kernels {
namespace {

constexpr int kSubBlocks = 8;  // Q4_K / Q5_K sub-blocks of 32
constexpr int kChunk = 32;     // positions folded into lanes (index mod 32)
constexpr int kLanes = 8;      // float lanes of both orders
using PositionSums = int32_t[kChunk];

int64_t block_count(int64_t n) {
  PARETO_CHECK_MSG(n % kQK_K == 0, "K-quant row length must be a multiple of 256");
  return n / kQK_K;
}

struct ScalesMins {
  int32_t scale[kSubBlocks];
  int32_t min[kSubBlocks];
};

[[gnu::always_inline]] inline ScalesMins unpack_scales_mins(const uint8_t* packed) {
  ScalesMins out;
  for (int j = 0; j < kSubBlocks; ++j) {
    uint8_t sc = 0, m = 0;
    kquant_scale_min(packed, j, &sc, &m);
    out.scale[j] = sc;
    out.min[j] = m;
  }
  return out;
}

// Weights of one block as signed bytes in element order.
[[gnu::always_inline]] inline void unpack_q4_K(const BlockQ4_K& b, int8_t* w) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      w[64 * c + l] = static_cast<int8_t>(b.qs[32 * c + l] & 0xF);
      w[64 * c + 32 + l] = static_cast<int8_t>(b.qs[32 * c + l] >> 4);
    }
  }
}

[[gnu::always_inline]] inline void unpack_q5_K(const BlockQ5_K& b, int8_t* w) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int h = b.qh[l];
      w[64 * c + l] = static_cast<int8_t>((b.qs[32 * c + l] & 0xF) | (((h >> (2 * c)) & 1) << 4));
      w[64 * c + 32 + l] =
          static_cast<int8_t>((b.qs[32 * c + l] >> 4) | (((h >> (2 * c + 1)) & 1) << 4));
    }
  }
}

[[gnu::always_inline]] inline void unpack_q6_K(const BlockQ6_K& b, int8_t* w) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    int8_t* out = w + 128 * half;
    for (int l = 0; l < 32; ++l) {
      out[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      out[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      out[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      out[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

// pos[e] = sum over the 8 chunks c of scale(32c + e) * w[32c + e] * q8[32c + e], with
// scale(p) = scale[p / kSub]. |w * q8| <= 63 * 127 and scales <= 127: int32 cannot overflow.
template <int kSub>
[[gnu::always_inline]] inline void position_sums(const int8_t* w, const int8_t* q8,
                                                 const int32_t* scale, PositionSums& pos) {
  int32_t acc[kChunk] = {};  // local: no aliasing with the inputs, so the loops vectorize
  for (int c = 0; c < kQK_K / kChunk; ++c) {
    for (int h = 0; h < kChunk / kSub; ++h) {
      const int32_t s = scale[(kChunk / kSub) * c + h];
      for (int e = 0; e < kSub; ++e) {
        const int p = kChunk * c + kSub * h + e;
        acc[kSub * h + e] += s * static_cast<int16_t>(w[p] * q8[p]);
      }
    }
  }
  for (int e = 0; e < kChunk; ++e) pos[e] = acc[e];
}

// ggml generic lanes: lane l holds the elements with index mod 8 == l.
inline void fold_generic(const PositionSums& pos, int32_t (&lanes)[kLanes]) {
  for (int l = 0; l < kLanes; ++l) lanes[l] = pos[l] + pos[l + 8] + pos[l + 16] + pos[l + 24];
}

// AVX2 lanes (maddubs + madd on 32 bytes): lane k holds index mod 32 in [4k, 4k + 4).
inline void fold_avx2(const PositionSums& pos, int32_t (&lanes)[kLanes]) {
  for (int k = 0; k < kLanes; ++k) {
    lanes[k] = pos[4 * k] + pos[4 * k + 1] + pos[4 * k + 2] + pos[4 * k + 3];
  }
}

// AVX2 mins term: _mm_madd_epi16(mins, _mm_hadd_epi16(bsums lo, bsums hi)), 4 lanes.
inline void mins_avx2(const ScalesMins& sm, const int16_t* bsums, int32_t (&prod)[4]) {
  for (int m = 0; m < 4; ++m) {
    prod[m] = sm.min[2 * m] * (bsums[4 * m] + bsums[4 * m + 1]) +
              sm.min[2 * m + 1] * (bsums[4 * m + 2] + bsums[4 * m + 3]);
  }
}

inline int32_t mins_generic(const ScalesMins& sm, const int16_t* bsums) {
  int32_t sumi = 0;
  for (int j = 0; j < kQK_K / 16; ++j) sumi += bsums[j] * sm.min[j / 2];
  return sumi;
}

// Lane sums of one Q4_K / Q5_K / Q6_K block against a Q8_K block, folded by `Fold`.
template <class Block>
[[gnu::always_inline]] inline void block_position_sums(const Block& x, const BlockQ8_K& y,
                                                       PositionSums& pos, ScalesMins* sm) {
  alignas(32) int8_t w[kQK_K];
  if constexpr (std::is_same_v<Block, BlockQ6_K>) {
    unpack_q6_K(x, w);
    int32_t scale[kQK_K / 16];
    for (int j = 0; j < kQK_K / 16; ++j) scale[j] = x.scales[j];
    position_sums<16>(w, y.qs, scale, pos);
  } else {
    if constexpr (std::is_same_v<Block, BlockQ4_K>) {
      unpack_q4_K(x, w);
    } else {
      unpack_q5_K(x, w);
    }
    *sm = unpack_scales_mins(x.scales);
    position_sums<32>(w, y.qs, sm->scale, pos);
  }
}

// ggml_vec_dot_q{4,5,6}_K_q8_K_generic: sums[l] += d * aux32[l]; sumf -= dmin * sumi per block;
// then sumf += sums[0..7] in order.
template <class Block>
float dot_generic(const Block* x, const BlockQ8_K* y, int64_t n) {
  const int64_t nb = block_count(n);
  float sums[kLanes] = {};
  float sumf = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    PositionSums pos;
    ScalesMins sm;
    block_position_sums(x[i], y[i], pos, &sm);
    int32_t lanes[kLanes];
    fold_generic(pos, lanes);
    const float d = f16_to_f32(x[i].d) * y[i].d;
    for (int l = 0; l < kLanes; ++l) {
      const float term = d * static_cast<float>(lanes[l]);
      sums[l] += term;
    }
    if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
      const float dmin = f16_to_f32(x[i].dmin) * y[i].d;
      const float term = dmin * static_cast<float>(mins_generic(sm, y[i].bsums));
      sumf -= term;
    }
  }
  for (int l = 0; l < kLanes; ++l) sumf += sums[l];
  return sumf;
}

float hsum4(const float (&v)[4]) {
  return (v[0] + v[2]) + (v[1] + v[3]);
}

// ggml_vec_dot_q{4,5,6}_K_q8_K, __AVX2__ branch.
template <class Block>
[[gnu::always_inline]] inline float dot_avx2_order(const Block* x, const BlockQ8_K* y, int64_t n) {
  const int64_t nb = block_count(n);
  float acc[kLanes] = {};
  float acc_m[4] = {};  // Q4_K mins
  float summs = 0.0f;   // Q5_K mins
  for (int64_t i = 0; i < nb; ++i) {
    PositionSums pos;
    ScalesMins sm;
    block_position_sums(x[i], y[i], pos, &sm);
    int32_t lanes[kLanes];
    fold_avx2(pos, lanes);
    const float d = y[i].d * f16_to_f32(x[i].d);
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(d, static_cast<float>(lanes[l]), acc[l]);
    if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
      const float dmin = -y[i].d * f16_to_f32(x[i].dmin);
      int32_t prod[4];
      mins_avx2(sm, y[i].bsums, prod);
      if constexpr (std::is_same_v<Block, BlockQ4_K>) {
        for (int m = 0; m < 4; ++m)
          acc_m[m] = std::fma(dmin, static_cast<float>(prod[m]), acc_m[m]);
      } else {
        // summs += dmin * hsum(prod): ggml is built with FP contraction, so this is fused.
        summs = std::fma(dmin, static_cast<float>(prod[0] + prod[1] + prod[2] + prod[3]), summs);
      }
    }
  }
  if constexpr (std::is_same_v<Block, BlockQ4_K>) return ggml::hsum8(acc) + hsum4(acc_m);
  if constexpr (std::is_same_v<Block, BlockQ5_K>) return ggml::hsum8(acc) + summs;
  return ggml::hsum8(acc);
}

// llama.cpp's AMX order (kquants.h). The integer sums are the same in any order: the positions'
// sums for S, ggml's generic mins loop for M.
template <class Block>
[[gnu::always_inline]] inline float dot_block_order(const Block* x, const BlockQ8_K* y, int64_t n) {
  const int64_t nb = block_count(n);
  float acc = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    PositionSums pos;
    ScalesMins sm;
    block_position_sums(x[i], y[i], pos, &sm);
    int32_t s = 0;
    for (int e = 0; e < kChunk; ++e) s += pos[e];
    const float d = f16_to_f32(x[i].d) * y[i].d;
    acc = std::fma(static_cast<float>(s), d, acc);
    if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
      const float dmin = f16_to_f32(x[i].dmin) * y[i].d;
      acc = std::fma(-static_cast<float>(mins_generic(sm, y[i].bsums)), dmin, acc);
    }
  }
  return acc;
}

#ifdef PARETO_KQUANT_X86_DISPATCH
template <class Block>
[[gnu::target("avx2,fma")]] float dot_block_order_avx2(const Block* x, const BlockQ8_K* y,
                                                       int64_t n) {
  return dot_block_order(x, y, n);
}

template <class Block>
[[gnu::target("avx2,fma")]] float dot_avx2_order_avx2(const Block* x, const BlockQ8_K* y,
                                                      int64_t n) {
  return dot_avx2_order(x, y, n);
}

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

template <class Block>
float dot_fast(const Block* x, const BlockQ8_K* y, int64_t n) {
#ifdef PARETO_KQUANT_X86_DISPATCH
  if (cpu_has_avx2_fma()) return dot_avx2_order_avx2(x, y, n);
#endif
#ifdef PARETO_KQUANT_NEON
  const bool sdot = quant_neon_sdot_supported();
  if constexpr (std::is_same_v<Block, BlockQ4_K>)
    return dot_q4_K_q8_K_neon(x, y, block_count(n), sdot);
  if constexpr (std::is_same_v<Block, BlockQ5_K>)
    return dot_q5_K_q8_K_neon(x, y, block_count(n), sdot);
  if constexpr (std::is_same_v<Block, BlockQ6_K>)
    return dot_q6_K_q8_K_neon(x, y, block_count(n), sdot);
#endif
  return dot_avx2_order(x, y, n);
}

template <class Block>
float dot_block_fast(const Block* x, const BlockQ8_K* y, int64_t n) {
#ifdef PARETO_KQUANT_X86_DISPATCH
  if (cpu_has_avx2_fma()) return dot_block_order_avx2(x, y, n);
#endif
  return dot_block_order(x, y, n);
}

}  // namespace

bool is_kquant(TensorType type) {
  return type == TensorType::Q4_K || type == TensorType::Q5_K || type == TensorType::Q6_K;
}

// --- Dequantization: ggml's dequantize_row_q*_K, the same float ops ---

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n) {
  const int64_t nb = block_count(n);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    const float min = f16_to_f32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc = 0, m = 0;
      kquant_scale_min(x[i].scales, 2 * c, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      kquant_scale_min(x[i].scales, 2 * c + 1, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n) {
  const int64_t nb = block_count(n);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    const float min = f16_to_f32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc = 0, m = 0;
      kquant_scale_min(x[i].scales, 2 * c, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      kquant_scale_min(x[i].scales, 2 * c + 1, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      const int u1 = 1 << (2 * c), u2 = 2 << (2 * c);
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      }
      ql += 32;
    }
  }
}

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n) {
  const int64_t nb = block_count(n);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    alignas(32) int8_t w[kQK_K];
    unpack_q6_K(x[i], w);
    // ggml: y = d * sc[is] * q, evaluated left to right in float.
    for (int p = 0; p < kQK_K; ++p) {
      y[p] = d * static_cast<float>(x[i].scales[p / 16]) * static_cast<float>(w[p]);
    }
    y += kQK_K;
  }
}

void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n) {
  const int64_t nb = block_count(n);
  for (int64_t i = 0; i < nb; ++i) {
    for (int p = 0; p < kQK_K; ++p) *y++ = static_cast<float>(x[i].qs[p]) * x[i].d;
  }
}

void quantize_row_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n) {
  const int64_t nb = block_count(n);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = kquant_nearest_int(iscale * x[j]);
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += y[i].qs[16 * g + k];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// --- Dot products ---

float vec_dot_q4_K_q8_K_scalar(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_generic(x, y, n);
}
float vec_dot_q5_K_q8_K_scalar(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_generic(x, y, n);
}
float vec_dot_q6_K_q8_K_scalar(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_generic(x, y, n);
}

float vec_dot_q4_K_q8_K(const BlockQ4_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_fast(x, y, n);
}
float vec_dot_q5_K_q8_K(const BlockQ5_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_fast(x, y, n);
}
float vec_dot_q6_K_q8_K(const BlockQ6_K* x, const BlockQ8_K* y, int64_t n) {
  return dot_fast(x, y, n);
}

// --- Type dispatch ---

void dequantize_row_kquant(TensorType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case TensorType::Q4_K:
      return dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, n);
    case TensorType::Q5_K:
      return dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, n);
    case TensorType::Q6_K:
      return dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, n);
    default:
      PARETO_CHECK_MSG(false, "dequantize_row_kquant: not a K-quant type");
  }
}

void quantize_row_kquant(TensorType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case TensorType::Q4_K:
      return quantize_row_q4_K(src, static_cast<BlockQ4_K*>(dst), n);
    case TensorType::Q5_K:
      return quantize_row_q5_K(src, static_cast<BlockQ5_K*>(dst), n);
    case TensorType::Q6_K:
      return quantize_row_q6_K(src, static_cast<BlockQ6_K*>(dst), n);
    default:
      PARETO_CHECK_MSG(false, "quantize_row_kquant: not a K-quant type");
  }
}

namespace {

// fn(weight row as its block type, Q8_K row) for a Q4_K / Q5_K / Q6_K row; fails with `error`
// (naming the entry point) for any other type.
template <class Fn>
float with_kquant_row(TensorType type, const void* w_row, const void* q8k_row, const char* error,
                      Fn fn) {
  const auto* y = static_cast<const BlockQ8_K*>(q8k_row);
  switch (type) {
    case TensorType::Q4_K:
      return fn(static_cast<const BlockQ4_K*>(w_row), y);
    case TensorType::Q5_K:
      return fn(static_cast<const BlockQ5_K*>(w_row), y);
    case TensorType::Q6_K:
      return fn(static_cast<const BlockQ6_K*>(w_row), y);
    default:
      PARETO_CHECK_MSG(false, error);
      return 0.0f;
  }
}

}  // namespace

float dot_kquant_q8k(TensorType type, const void* w_row, const void* q8k_row, int64_t n) {
  return with_kquant_row(type, w_row, q8k_row, "dot_kquant_q8k: not a K-quant type",
                         [n](const auto* x, const BlockQ8_K* y) { return dot_fast(x, y, n); });
}

float dot_kquant_q8k_ref(TensorType type, const void* w_row, const void* q8k_row, int64_t n) {
  return with_kquant_row(
      type, w_row, q8k_row, "dot_kquant_q8k_ref: not a K-quant type",
      [n](const auto* x, const BlockQ8_K* y) { return dot_avx2_order(x, y, n); });
}

float dot_kquant_q8k_scalar(TensorType type, const void* w_row, const void* q8k_row, int64_t n) {
  return with_kquant_row(type, w_row, q8k_row, "dot_kquant_q8k_scalar: not a K-quant type",
                         [n](const auto* x, const BlockQ8_K* y) { return dot_generic(x, y, n); });
}

float dot_kquant_q8k_block(TensorType type, const void* w_row, const void* q8k_row, int64_t n) {
  return with_kquant_row(
      type, w_row, q8k_row, "dot_kquant_q8k_block: not a K-quant type",
      [n](const auto* x, const BlockQ8_K* y) { return dot_block_fast(x, y, n); });
}

}  // namespace pareto::kernels
