// AVX-512 (F/BW/VL/VNNI) K-quant kernels: the Q8_K activation quantizer and the tiled K-quant x
// Q8_K matmul rows. Both are bit-identical to the reference code in kquants.cpp:
//   - quantize_row_q8_K: the same max search (first element of largest magnitude), the same
//     float product iscale * x, the same nearest_int bit trick and the same 1 / iscale.
//   - matmul_kquant_rows (and matmul_kquant_block_rows, the same code in llama.cpp's AMX order,
//     dot_kquant_q8k_block): per (row, token) output the exact float operations of
//     dot_kquant_q8k (llama.cpp's AVX2 order): per super-block one fma of d = y.d * x.d into 8
//     lanes, lane k holding the scaled integer sum of the elements whose index mod 32 is in
//     [4k, 4k + 4), the mins folded as in the AVX2 routine, then hsum8 (+ mins). Only integer
//     work is reorganized: each 64-element group is one zmm (two 32-element chunks side by side),
//     its int32 lane j < 8 holds chunk-even lane j and lane j + 8 chunk-odd lane j, and the two
//     halves are added (exact) before the one int -> float conversion per super-block. Q4_K /
//     Q5_K take unscaled 4-sums with vpdpbusd and scale two groups at once with vpdpwssd; Q6_K
//     keeps llama.cpp's maddubs(q) - maddubs(32) and scales with vpdpwssd.
// The tiling (prefill): a weight super-block of 2 rows is unpacked once (nibbles split into
// element order, sub-block scales broadcast to int16 pairs) and used for up to 64 tokens; each
// output's 8 float lanes live in a small stack array across super-blocks. Decode (one token)
// streams 4 rows at a time with the state in registers and software prefetch of the weights.
// Measured on one Sapphire Rapids core (2048 x 8192, CPU time per row x token x super-block):
// prefill 64 tokens Q4_K 15.0 -> 5.2 ns, Q6_K 17.4 -> 5.2 ns; decode Q4_K 26 -> 16 ns, Q6_K
// 32 -> 13 ns; the Q8_K quantizer 1.6 -> 0.46 ns per element.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "base/check.h"
#include "base/half.h"
#include "kernels/ggml_math.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/kquants.h"
#include "kernels/simd_avx512.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PARETO_KQUANT_AVX512 1
#endif

namespace pareto::kernels {
namespace {

#ifdef PARETO_KQUANT_AVX512
#if defined(__clang__)
#pragma clang attribute push(                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
// GCC 12's _mm512_undefined_* (`__m512i __Y = __Y;`) inside intrinsics trips
// -W(maybe-)uninitialized once inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

constexpr int kGroups = 4;                 // 64-element groups per super-block (one zmm each)
constexpr int64_t kTokenTile = 64;         // tokens per pass over a row's super-blocks
constexpr int64_t kPrefetchBlocks = 16;    // weight prefetch distance, in super-blocks
constexpr int kDecodeRows = 4;             // rows per pass in decode (one token)
constexpr float kRoundShift = 12582912.f;  // 1.5 * 2^23: kquant_nearest_int's shift

// Permutation indices broadcasting sub-block scales to the 32 int16 pairs of a group: pair m of
// group g covers elements 64g + 2m, 64g + 2m + 1, in sub-block (64g + 2m) / sub_len.
struct ScaleIdx {
  alignas(64) int16_t v[kGroups][32];
};
constexpr ScaleIdx make_scale_idx(int pairs_per_sub) {
  ScaleIdx s{};
  for (int g = 0; g < kGroups; ++g) {
    for (int m = 0; m < 32; ++m) s.v[g][m] = static_cast<int16_t>((32 * g + m) / pairs_per_sub);
  }
  return s;
}
// Q4_K / Q5_K after dpbusd: int16 lane m of pair zmm c holds the low half of the 4-sum in int32
// lane m / 2 of group 2c + m % 2; that lane lies in sub-block 2 * (2c + m % 2) + (m / 2) / 8.
constexpr ScaleIdx make_pair_idx() {
  ScaleIdx s{};
  for (int c = 0; c < 2; ++c) {
    for (int m = 0; m < 32; ++m) s.v[c][m] = static_cast<int16_t>(2 * (2 * c + m % 2) + m / 16);
  }
  return s;
}
constexpr ScaleIdx kIdxQ45 = make_pair_idx();
constexpr ScaleIdx kIdxQ6 = make_scale_idx(8);  // sub-blocks of 16 elements

inline __m512i load64(const void* p) {
  return _mm512_loadu_si512(p);
}

// One weight super-block ready for maddubs: q[g] = unsigned quants of elements 64g .. 64g+63 in
// element order; sc[g] = int16 scale of each int16 pair of q[g].
struct Unpacked {
  __m512i q[kGroups];
  __m512i sc[kGroups];
  __m128i mins;  // Q4_K / Q5_K: the 8 sub-block mins as int16
  float d;       // fp16 d as float
  float dmin;    // Q4_K / Q5_K: fp16 dmin as float
};

// Q4_K / Q5_K scales and mins (llama.cpp's utmp unpacking; equal to kquant_scale_min).
inline void unpack_scales_q45(const uint8_t* packed, Unpacked& u) {
  uint32_t t[4];
  std::memcpy(t, packed, kKScaleBytes);
  constexpr uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
  t[3] = ((t[2] >> 4) & k2) | (((t[1] >> 6) & k3) << 4);
  const uint32_t aux = t[1] & k1;
  t[1] = (t[2] & k2) | (((t[0] >> 6) & k3) << 4);
  t[2] = aux;
  t[0] &= k1;
  // t bytes 0..7: scales of sub-blocks 0..7; bytes 8..15: mins.
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
  const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(v));
  u.mins = _mm_cvtepu8_epi16(_mm_srli_si128(v, 8));
  for (int c = 0; c < 2; ++c) u.sc[c] = _mm512_permutexvar_epi16(load64(kIdxQ45.v[c]), sc);
}

// Q4_K nibbles: qs bytes 64h .. 64h+63 are chunks 2h and 2h+1; chunk c holds elements 64c + l
// (low nibble) and 64c + 32 + l (high nibble), so group c = [low nibbles | high nibbles].
inline void unpack_nibbles(const uint8_t* qs, Unpacked& u) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int h = 0; h < 2; ++h) {
    const __m512i z = load64(qs + 64 * h);
    const __m512i lo = _mm512_and_si512(z, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), low4);
    u.q[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);      // chunk 2h: low | high
    u.q[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xEE);  // chunk 2h + 1
  }
}

inline void unpack(const BlockQ4_K& b, Unpacked& u) {
  unpack_scales_q45(b.scales, u);
  unpack_nibbles(b.qs, u);
  u.d = _cvtsh_ss(b.d);
  u.dmin = _cvtsh_ss(b.dmin);
}

inline void unpack(const BlockQ5_K& b, Unpacked& u) {
  unpack_scales_q45(b.scales, u);
  unpack_nibbles(b.qs, u);
  // Bit 2g of qh[l] is bit 4 of element 64g + l, bit 2g + 1 that of 64g + 32 + l: hb holds qh
  // in the low half and qh >> 1 in the high half (per byte after the mask below).
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
  const __m512i hb = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 1), 1);
  const __m512i one = _mm512_set1_epi8(1);
  for (int g = 0; g < kGroups; ++g) {
    const __m512i bit = _mm512_and_si512(_mm512_srl_epi16(hb, _mm_cvtsi32_si128(2 * g)), one);
    u.q[g] = _mm512_or_si512(u.q[g], _mm512_slli_epi16(bit, 4));
  }
  u.d = _cvtsh_ss(b.d);
  u.dmin = _cvtsh_ss(b.dmin);
}

// Q6_K: half h = elements 128h .. 128h+127 = groups 2h (ql low nibbles) and 2h + 1 (high).
inline void unpack(const BlockQ6_K& b, Unpacked& u) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i low2 = _mm512_set1_epi8(0x03);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = load64(b.ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    // Low half: qh (bits 0-1 / 4-5), high half: qh >> 2 (bits 2-3 / 6-7).
    const __m512i hb = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    const __m512i h0 = _mm512_slli_epi16(_mm512_and_si512(hb, low2), 4);
    const __m512i h1 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4), low2), 4);
    u.q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), h0);
    u.q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), h1);
  }
  const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(s8));
  for (int g = 0; g < kGroups; ++g) u.sc[g] = _mm512_permutexvar_epi16(load64(kIdxQ6.v[g]), sc);
  u.mins = _mm_setzero_si128();
  u.d = _cvtsh_ss(b.d);
  u.dmin = 0.0f;
}

// One token's Q8_K super-block: y[g] = its values of group g; m32[g] = 32 * pair sums (Q6_K).
struct TokenBlock {
  __m512i y[kGroups];
  __m512i m32[kGroups];
  __m128i bsum_pairs;  // bsums[2k] + bsums[2k + 1], k < 8
};

// The 8 integer lanes of one (weight block, token block) in the AVX2 lane layout.
template <class Block>
inline __m256i lane_sums(const Unpacked& u, const TokenBlock& tb) {
  __m512i sumi = _mm512_setzero_si512();
  if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
    // Unscaled 4-sums per group (|s| <= 4 * 31 * 128: fits int16), two groups packed as int16
    // pairs, then one madd with the two sub-block scales per pair.
    const __m512i zero = _mm512_setzero_si512();
    for (int c = 0; c < 2; ++c) {
      const __m512i a = _mm512_dpbusd_epi32(zero, u.q[2 * c], tb.y[2 * c]);
      const __m512i b = _mm512_dpbusd_epi32(zero, u.q[2 * c + 1], tb.y[2 * c + 1]);
      const __m512i ab = _mm512_mask_blend_epi16(0xAAAAAAAA, a, _mm512_slli_epi32(b, 16));
      sumi = _mm512_dpwssd_epi32(sumi, ab, u.sc[c]);
    }
    return _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
  }
  for (int g = 0; g < kGroups; ++g) {
    __m512i p = _mm512_maddubs_epi16(u.q[g], tb.y[g]);  // |pair| <= 2 * 63 * 128: no saturation
    if constexpr (std::is_same_v<Block, BlockQ6_K>) p = _mm512_sub_epi16(p, tb.m32[g]);
    sumi = _mm512_dpwssd_epi32(sumi, p, u.sc[g]);
  }
  return _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
}

inline float hsum8(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  return ggml::hsum8(lanes);
}

template <class Block>
inline TokenBlock load_token_block(const BlockQ8_K& yb) {
  TokenBlock tb;
  for (int g = 0; g < kGroups; ++g) {
    tb.y[g] = load64(yb.qs + 64 * g);
    if constexpr (std::is_same_v<Block, BlockQ6_K>) {
      tb.m32[g] = _mm512_maddubs_epi16(_mm512_set1_epi8(32), tb.y[g]);
    }
  }
  if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.bsums));
    tb.bsum_pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  }
  return tb;
}

// The float state of one output: dot_q45_K / dot_q6_K's acc, acc_m (Q4_K) and summs (Q5_K) in
// the AVX2 order; `block` alone in the block order (dot_kquant_q8k_block).
struct OutAcc {
  __m256 acc;
  __m128 acc_m;
  float summs;
  float block;
};

inline OutAcc zero_acc() {
  return {_mm256_setzero_ps(), _mm_setzero_ps(), 0.0f, 0.0f};
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_srli_si128(s, 4)));
}

// One super-block's contribution, in the AVX2 routine's float operations, or (BlockOrder) in
// llama.cpp's AMX order: the lanes' and the mins' integer sums, then one fma each.
template <class Block, bool BlockOrder>
inline void accumulate(const Unpacked& u, const TokenBlock& tb, float y_d, OutAcc& o) {
  const __m256i s = lane_sums<Block>(u, tb);
  const float d = y_d * u.d;
  if constexpr (BlockOrder) {
    o.block = std::fma(static_cast<float>(hsum_epi32(s)), d, o.block);
    if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
      const float dmin = -y_d * u.dmin;  // -(d_x * dmin_w), exact negation
      const __m128i prod = _mm_madd_epi16(u.mins, tb.bsum_pairs);
      const __m128i s2 = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
      const int32_t m = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_srli_si128(s2, 4)));
      o.block = std::fma(dmin, static_cast<float>(m), o.block);
    }
    return;
  }
  o.acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), o.acc);
  if constexpr (!std::is_same_v<Block, BlockQ6_K>) {
    const float dmin = -y_d * u.dmin;
    // min[2m] * (bs[4m] + bs[4m+1]) + min[2m+1] * (bs[4m+2] + bs[4m+3]), m < 4.
    const __m128i prod = _mm_madd_epi16(u.mins, tb.bsum_pairs);
    if constexpr (std::is_same_v<Block, BlockQ4_K>) {
      o.acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), o.acc_m);
    } else {
      const __m128i s2 = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
      const int32_t sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_srli_si128(s2, 4)));
      o.summs = std::fma(dmin, static_cast<float>(sum), o.summs);
    }
  }
}

template <class Block, bool BlockOrder>
inline float finish(const OutAcc& o) {
  if constexpr (BlockOrder) return o.block;
  const float v = hsum8(o.acc);
  if constexpr (std::is_same_v<Block, BlockQ4_K>) {
    alignas(16) float m4[4];
    _mm_store_ps(m4, o.acc_m);
    return v + ((m4[0] + m4[2]) + (m4[1] + m4[3]));
  } else if constexpr (std::is_same_v<Block, BlockQ5_K>) {
    return v + o.summs;
  }
  return v;
}

// Weight rows are read once, block by block, R rows side by side. Prefetch the block
// kPrefetchBlocks ahead in that order (continuing into the next R rows): in decode each block
// is used for a single token and the hardware streamer alone leaves the loads exposed.
template <class Block, int R>
inline void prefetch_ahead(const WeightView& w, int64_t rb, int64_t nb, int64_t r0, int64_t i) {
  const int64_t j = i + kPrefetchBlocks;
  const uint8_t* ahead = w.data + (r0 + R * (j / nb)) * rb + (j % nb) * int64_t{sizeof(Block)};
  for (int r = 0; r < R; ++r) {
    const char* a = reinterpret_cast<const char*>(ahead + r * rb);
    for (int64_t off = 0; off < int64_t{sizeof(Block)}; off += 64)
      _mm_prefetch(a + off, _MM_HINT_T0);
    _mm_prefetch(a + sizeof(Block) - 1, _MM_HINT_T0);
  }
}

// Prefill: rows [r0, r0 + R) for every token; each unpacked weight block serves up to
// kTokenTile tokens.
template <class Block, int R, bool BlockOrder>
void rows_tile(const WeightView& w, const PreparedActivations& x, int64_t r0, float* out) {
  const int64_t nb = w.cols / kQK_K;
  const int64_t rb = w.row_bytes();
  const Block* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = reinterpret_cast<const Block*>(w.data + (r0 + r) * rb);
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += kTokenTile) {
    const int64_t nt = std::min(kTokenTile, x.n_tokens - t0);
    OutAcc acc[kTokenTile][R];
    for (int64_t t = 0; t < nt; ++t) {
      for (int r = 0; r < R; ++r) acc[t][r] = zero_acc();
    }
    for (int64_t i = 0; i < nb; ++i) {
      prefetch_ahead<Block, R>(w, rb, nb, r0, i);
      Unpacked u[R];
      for (int r = 0; r < R; ++r) unpack(rows[r][i], u[r]);
      for (int64_t t = 0; t < nt; ++t) {
        const BlockQ8_K& yb = reinterpret_cast<const BlockQ8_K*>(x.row(t0 + t))[i];
        const TokenBlock tb = load_token_block<Block>(yb);
        for (int r = 0; r < R; ++r) accumulate<Block, BlockOrder>(u[r], tb, yb.d, acc[t][r]);
      }
    }
    for (int64_t t = 0; t < nt; ++t) {
      for (int r = 0; r < R; ++r) {
        out[(t0 + t) * w.rows + r0 + r] = finish<Block, BlockOrder>(acc[t][r]);
      }
    }
  }
}

// Decode (one token): rows [r0, r0 + R); blocks are unpacked straight into registers.
template <class Block, int R, bool BlockOrder>
void rows_decode(const WeightView& w, const PreparedActivations& x, int64_t r0, float* out) {
  const int64_t nb = w.cols / kQK_K;
  const int64_t rb = w.row_bytes();
  const auto* y = reinterpret_cast<const BlockQ8_K*>(x.row(0));
  OutAcc acc[R];
  for (int r = 0; r < R; ++r) acc[r] = zero_acc();
  for (int64_t i = 0; i < nb; ++i) {
    prefetch_ahead<Block, R>(w, rb, nb, r0, i);
    const TokenBlock tb = load_token_block<Block>(y[i]);
    for (int r = 0; r < R; ++r) {
      Unpacked u;
      unpack(reinterpret_cast<const Block*>(w.data + (r0 + r) * rb)[i], u);
      accumulate<Block, BlockOrder>(u, tb, y[i].d, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r0 + r] = finish<Block, BlockOrder>(acc[r]);
}

template <class Block, bool BlockOrder>
void rows_avx512(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                 int64_t row_end, float* y) {
  int64_t r = row_begin;
  if (x.n_tokens == 1) {
    for (; r + kDecodeRows <= row_end; r += kDecodeRows) {
      rows_decode<Block, kDecodeRows, BlockOrder>(w, x, r, y);
    }
    for (; r < row_end; ++r) rows_decode<Block, 1, BlockOrder>(w, x, r, y);
    return;
  }
  for (; r + 2 <= row_end; r += 2) rows_tile<Block, 2, BlockOrder>(w, x, r, y);
  if (r < row_end) rows_tile<Block, 1, BlockOrder>(w, x, r, y);
}

void quantize_q8_K(const float* x, BlockQ8_K* y, int64_t nb) {
  const __m512i mant = _mm512_set1_epi32(0x007fffff);
  const __m512i bias = _mm512_set1_epi32(0x00400000);
  const __m512i q127 = _mm512_set1_epi32(127);
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    // vmaxps returns its second operand when either is NaN: NaNs are skipped as by `ax > amax`.
    __m512 amax_v = _mm512_setzero_ps();
    for (int k = 0; k < 16; ++k)
      amax_v = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), amax_v);
    const float amax = _mm512_reduce_max_ps(amax_v);
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    // The reference keeps the first element whose magnitude is amax.
    float max = 0.0f;
    for (int k = 0; k < 16; ++k) {
      const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)),
                                             _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (m != 0) {
        max = x[16 * k + __builtin_ctz(m)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vscale = _mm512_set1_ps(iscale);
    for (int k = 0; k < 16; ++k) {
      // nearest_int(iscale * x): the product, then + 1.5 * 2^23, mantissa bits - 2^22.
      const __m512 shifted = _mm512_add_ps(_mm512_mul_ps(vscale, _mm512_loadu_ps(x + 16 * k)),
                                           _mm512_set1_ps(kRoundShift));
      __m512i v = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(shifted), mant), bias);
      v = _mm512_min_epi32(v, q127);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * k), _mm512_cvtepi32_epi8(v));
      // bsums sum the stored int8 values (truncated like the reference's cast).
      const __m512i q8 = _mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24);
      y[i].bsums[k] = static_cast<int16_t>(_mm512_reduce_add_epi32(q8));
    }
    y[i].d = 1 / iscale;
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

bool avx512_supported() {
  return avx512::avx512_vnni_supported();
}

// rows_avx512 for w's block type; false (nothing done) without AVX-512 or for another type.
template <bool BlockOrder>
bool try_rows_avx512(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                     int64_t row_end, float* y) {
  if (!avx512_supported() || w.cols % kQK_K != 0) return false;
  switch (w.type) {
    case TensorType::Q4_K:
      rows_avx512<BlockQ4_K, BlockOrder>(w, x, row_begin, row_end, y);
      return true;
    case TensorType::Q5_K:
      rows_avx512<BlockQ5_K, BlockOrder>(w, x, row_begin, row_end, y);
      return true;
    case TensorType::Q6_K:
      rows_avx512<BlockQ6_K, BlockOrder>(w, x, row_begin, row_end, y);
      return true;
    default:
      return false;
  }
}
#endif  // PARETO_KQUANT_AVX512

// The untiled loop: one dot product per (row, token).
void rows_dot(const WeightView& w, const PreparedActivations& x, int64_t row_begin, int64_t row_end,
              float* y) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      y[t * w.rows + r] = dot_kquant_q8k_fast(w.type, w.row(r), x.row(t), w.cols);
    }
  }
}

}  // namespace

bool kquant_avx512_supported() {
#ifdef PARETO_KQUANT_AVX512
  return avx512_supported();
#else
  return false;
#endif
}

void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n) {
#ifdef PARETO_KQUANT_AVX512
  if (avx512_supported()) {
    PARETO_CHECK_MSG(n % kQK_K == 0, "K-quant row length must be a multiple of 256");
    return quantize_q8_K(x, y, n / kQK_K);
  }
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
  PARETO_CHECK_MSG(n % kQK_K == 0, "K-quant row length must be a multiple of 256");
  return quantize_row_q8_K_neon(x, y, n / kQK_K);  // kquants_neon.cpp
#endif
  quantize_row_q8_K_ref(x, y, n);
}

void matmul_kquant_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                        int64_t row_end, float* y) {
#ifdef PARETO_KQUANT_AVX512
  if (try_rows_avx512<false>(w, x, row_begin, row_end, y)) return;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
  return matmul_kquant_rows_neon(w, x, row_begin, row_end, y,  // kquants_neon.cpp
                                 quant_neon_sdot_supported());
#endif
  rows_dot(w, x, row_begin, row_end, y);
}

void matmul_kquant_block_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                              int64_t row_end, float* y) {
#ifdef PARETO_KQUANT_AVX512
  if (try_rows_avx512<true>(w, x, row_begin, row_end, y)) return;
#endif
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      y[t * w.rows + r] = dot_kquant_q8k_block(w.type, w.row(r), x.row(t), w.cols);
    }
  }
}

void matmul_kquant_rows_scalar(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                               int64_t row_end, float* y) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < x.n_tokens; ++t) {
      y[t * w.rows + r] = dot_kquant_q8k_scalar(w.type, w.row(r), x.row(t), w.cols);
    }
  }
}

}  // namespace pareto::kernels
