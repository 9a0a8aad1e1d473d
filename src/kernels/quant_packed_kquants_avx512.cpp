// AVX-512 VNNI kernels over the packed Q4_K / Q6_K layout (quant_packed_kquants.cpp), one zmm
// lane per row, bit-identical to dot_kquant_q8k (llama.cpp's AVX2 order) for every row and token,
// or with PackedActTerms::order kBlock to dot_kquant_q8k_block (llama.cpp's AMX order: the same
// integer work, its lane sums added as integers, one or two fmas per super-block; no hsum).
//
// Float operations per row, token and super-block (those of dot_kquant_q8k), in this order:
//   d = y.d * (float)x.d;  acc[k] = fma(d, (float)lane[k], acc[k])  for k < 8;
//   Q4_K only: dmin = (-y.d) * (float)x.dmin;  acc_m[m] = fma(dmin, (float)prod[m], acc_m[m]),
//   m < 4; and at the end out = hsum8(acc) (+ hsum4(acc_m) for Q4_K) with
//   hsum8 = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), hsum4 = (m0 + m2) + (m1 + m3).
// Integer parts (exact in any order, so computed here per row lane):
//   lane[k] = sum over 32-element chunks c of scale(c, k) * sum_i w[32c + 4k + i] * q8[...], i < 4;
//   prod[m] = min[2m] * (bs[4m] + bs[4m+1]) + min[2m+1] * (bs[4m+2] + bs[4m+3]).
// Per lane k and chunk pair p (chunks 2p, 2p + 1; quant_packed_kquants.cpp) and row: two
// vpmaddubsw of the packed quants (unsigned) with broadcast activation dwords, added as int16
// pairs (chunk 2p sum, chunk 2p + 1 sum), then vpdpwssd with the row's (scale, scale) pair for
// those chunks; 4 such per lane. Q6_K takes the unsigned 6-bit q and adds the activation-only
// -32 * sum(x) pair before the vpdpwssd (bounds at q6k_block). Q4_K mins: one vpdpwssd of the
// (min 2m, min 2m + 1) pair with the bsum pair. Then one int -> float per lane and the float ops
// above.
// Tiling: prefill takes up to 8 tokens per pass over a group's super-blocks (the float state in
// a small stack array), in token blocks that keep the activation terms in L2; decode streams
// each group once with software prefetch spread over the super-block (interleaving 2-4 groups
// measured no faster).
// Measured on one Sapphire Rapids core (8192 x 2048, ns per row x token x super-block), raw
// matmul_kquant_rows -> packed: 64 tokens Q4_K 5.3 -> 2.5, Q6_K 5.3 -> 3.0-3.5; one token (in
// cache) Q4_K 13-17 -> 8-10, Q6_K 16-18 -> 15.
#include <algorithm>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "kernels/kquants.h"
#include "kernels/quant_packed.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PARETO_PACKED_KQ_X86 1
#include <immintrin.h>
#endif

namespace pareto::kernels::packed {

#ifdef PARETO_PACKED_KQ_X86
namespace {

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define PARETO_UNROLL _Pragma("GCC unroll 16")

constexpr int kQ4KTokens = 8;  // tokens per weight super-block load
constexpr int kQ6KTokens = 8;
constexpr int kMaxTokens = 8;
constexpr int64_t kPrefetchBytes = 4096;  // software prefetch distance into the packed stream

// Where NT tokens' inputs and outputs are.
struct KTile {
  const int32_t* x[kMaxTokens];  // [nb][kKquantTermDwords] activation terms
  const float* d[kMaxTokens];    // [nb] activation scales
  float* y[kMaxTokens];          // 16 outputs each
};

// 32 bytes (row r's pair at 2r, 2r + 1) as int16 pairs in lane r, zero- or sign-extended.
template <bool Signed>
inline __m512i load_pairs(const uint8_t* p) {
  const __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
  return Signed ? _mm512_cvtepi8_epi16(b) : _mm512_cvtepu8_epi16(b);
}

// Prefetches may run past the buffer's end; they never fault.
inline void prefetch_lines(const uint8_t* p, int lines) {
  for (int i = 0; i < lines; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(p + 64 * i), _MM_HINT_T0);
  }
}

inline __m512 load_f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The int16 pair sums of chunk pair p in float lane k for one token: V0 . x0 + V1 . x1 as
// (chunk 2p, chunk 2p + 1) int16 pairs; xt = the token's 3 dwords of (k, p).
inline __m512i pair_sums(__m512i v0, __m512i v1, const int32_t* xt) {
  const __m512i a = _mm512_maddubs_epi16(v0, _mm512_set1_epi32(xt[0]));
  const __m512i b = _mm512_maddubs_epi16(v1, _mm512_set1_epi32(xt[1]));
  return _mm512_add_epi16(a, b);
}

// acc[t][k] = fma(dk[t], (float)ia[t], acc[t][k]) for every token.
template <int NT>
inline void add_scaled(const __m512* dk, const __m512i* ia, __m512 (*acc)[12], int k) {
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t)
    acc[t][k] = _mm512_fmadd_ps(dk[t], _mm512_cvtepi32_ps(ia[t]), acc[t][k]);
}

// One Q4_K super-block b (record sb) x NT tokens into acc[t][0..7] (lanes) and [8..11] (mins).
// Pair sums: |4 * 15 * 128| fits int16.
// Block (llama.cpp's AMX order): the lanes' integer sums are summed on (exact) into one S per
// token, then acc[t][0] = fma(d, (float)S, acc[t][0]) and the mins' sum M likewise with -dmin.
template <int NT, bool Block>
inline void q4k_block(const uint8_t* sb, int64_t b, const KTile& tt, __m512 (*acc)[12]) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  const uint8_t* pf = sb + kPrefetchBytes;  // spread over the block: 4 lines per k, 5 here
  prefetch_lines(pf + 2048, 5);
  __m512i sc[4];  // (scale 2p, scale 2p + 1) per row
  PARETO_UNROLL
  for (int p = 0; p < 4; ++p) sc[p] = load_pairs<false>(sb + 2048 + 32 * p);
  const __m512 dw = load_f16x16(sb + 2304);
  __m512 dk[NT];
  const int32_t* xb[NT];
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) {
    dk[t] = _mm512_mul_ps(_mm512_set1_ps(tt.d[t][b]), dw);
    xb[t] = tt.x[t] + b * kKquantTermDwords;
  }
  __m512i ia[NT];
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
  PARETO_UNROLL
  for (int k = 0; k < 8; ++k) {
    prefetch_lines(pf + 4 * k * kVecBytes, 4);
    if constexpr (!Block) {
      PARETO_UNROLL
      for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
    }
    PARETO_UNROLL
    for (int p = 0; p < 4; ++p) {
      const __m512i v = _mm512_load_si512(sb + (4 * k + p) * kVecBytes);
      const __m512i v0 = _mm512_and_si512(v, low);
      const __m512i v1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      PARETO_UNROLL
      for (int t = 0; t < NT; ++t) {
        ia[t] = _mm512_dpwssd_epi32(ia[t], pair_sums(v0, v1, xb[t] + 3 * (4 * k + p)), sc[p]);
      }
    }
    if constexpr (!Block) {
      add_scaled<NT>(dk, ia, acc, k);
    }
  }
  if constexpr (Block) {
    add_scaled<NT>(dk, ia, acc, 0);
  }
  const __m512 dmw = load_f16x16(sb + 2336);
  __m512i pm[NT];  // Block: M
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) pm[t] = _mm512_setzero_si512();
  PARETO_UNROLL
  for (int m = 0; m < 4; ++m) {
    const __m512i mv = load_pairs<false>(sb + 2176 + 32 * m);
    PARETO_UNROLL
    for (int t = 0; t < NT; ++t) {
      if constexpr (Block) {
        pm[t] = _mm512_dpwssd_epi32(pm[t], mv, _mm512_set1_epi32(xb[t][96 + m]));
      } else {
        const __m512i p =
            _mm512_dpwssd_epi32(_mm512_setzero_si512(), mv, _mm512_set1_epi32(xb[t][96 + m]));
        const __m512 dmin = _mm512_mul_ps(_mm512_set1_ps(-tt.d[t][b]), dmw);
        acc[t][8 + m] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(p), acc[t][8 + m]);
      }
    }
  }
  if constexpr (Block) {
    PARETO_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512 dmin = _mm512_mul_ps(_mm512_set1_ps(-tt.d[t][b]), dmw);  // -(d_x * dmin_w)
      acc[t][0] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(pm[t]), acc[t][0]);
    }
  }
}

// One Q6_K super-block b x NT tokens into acc[t][0..7]. Pair sums of unsigned q: two
// vpmaddubsw words <= 2 * 2 * 63 * 128 = 32256, then + (-32 * sum x) gives the (q - 32) sums.
template <int NT, bool Block>
inline void q6k_block(const uint8_t* sb, int64_t b, const KTile& tt, __m512 (*acc)[12]) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i hi2 = _mm512_set1_epi8(0x30);
  const uint8_t* pf = sb + kPrefetchBytes;  // spread over the block: 6 lines per k, 5 here
  prefetch_lines(pf + 3072, 5);
  const __m512 dw = load_f16x16(sb + 3328);
  __m512 dk[NT];
  const int32_t* xb[NT];
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) {
    dk[t] = _mm512_mul_ps(_mm512_set1_ps(tt.d[t][b]), dw);
    xb[t] = tt.x[t] + b * kKquantTermDwords;
  }
  __m512i ia[NT];
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
  PARETO_UNROLL
  for (int kh = 0; kh < 2; ++kh) {
    __m512i sc[4];  // lanes k with k / 4 == kh: the scales of chunks 2p, 2p + 1 per row
    PARETO_UNROLL
    for (int p = 0; p < 4; ++p) sc[p] = load_pairs<true>(sb + 3072 + 32 * (4 * kh + p));
    PARETO_UNROLL
    for (int k = 4 * kh; k < 4 * kh + 4; ++k) {
      prefetch_lines(pf + 6 * k * kVecBytes, 6);
      if constexpr (!Block) {
        PARETO_UNROLL
        for (int t = 0; t < NT; ++t) ia[t] = _mm512_setzero_si512();
      }
      PARETO_UNROLL
      for (int h = 0; h < 2; ++h) {
        const uint8_t* v = sb + (6 * k + 3 * h) * kVecBytes;
        const __m512i a = _mm512_load_si512(v);
        const __m512i bb = _mm512_load_si512(v + kVecBytes);
        const __m512i qh = _mm512_load_si512(v + 2 * kVecBytes);
        // V0..V3 (6-bit): low nibble of a / bb, high nibble of a / bb, with bits 2j, 2j+1 of qh.
        __m512i q[4];
        q[0] = _mm512_or_si512(_mm512_and_si512(a, low4),
                               _mm512_and_si512(_mm512_slli_epi16(qh, 4), hi2));
        q[1] = _mm512_or_si512(_mm512_and_si512(bb, low4),
                               _mm512_and_si512(_mm512_slli_epi16(qh, 2), hi2));
        q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), low4),
                               _mm512_and_si512(qh, hi2));
        q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(bb, 4), low4),
                               _mm512_and_si512(_mm512_srli_epi16(qh, 2), hi2));
        PARETO_UNROLL
        for (int j = 0; j < 2; ++j) {
          const int p = 2 * h + j;
          PARETO_UNROLL
          for (int t = 0; t < NT; ++t) {
            const int32_t* xt = xb[t] + 3 * (4 * k + p);
            const __m512i s =
                _mm512_add_epi16(pair_sums(q[2 * j], q[2 * j + 1], xt), _mm512_set1_epi32(xt[2]));
            ia[t] = _mm512_dpwssd_epi32(ia[t], s, sc[p]);
          }
        }
      }
      if constexpr (!Block) {
        add_scaled<NT>(dk, ia, acc, k);
      }
    }
  }
  if constexpr (Block) {
    add_scaled<NT>(dk, ia, acc, 0);
  }
}

// hsum8(acc[0..7]) (+ hsum4(acc[8..11]) for Q4_K) per row lane, into y[0..16).
// Block: acc[0] as it is.
template <bool Q4, bool Block>
inline void finish(const __m512* a, float* y) {
  if constexpr (Block) {
    _mm512_storeu_ps(y, a[0]);
    return;
  }
  const __m512 s0 = _mm512_add_ps(a[0], a[4]), s1 = _mm512_add_ps(a[1], a[5]);
  const __m512 s2 = _mm512_add_ps(a[2], a[6]), s3 = _mm512_add_ps(a[3], a[7]);
  __m512 v = _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3));
  if constexpr (Q4) {
    v = _mm512_add_ps(v, _mm512_add_ps(_mm512_add_ps(a[8], a[10]), _mm512_add_ps(a[9], a[11])));
  }
  _mm512_storeu_ps(y, v);
}

// One group (record stream g) x NT tokens, all super-blocks; writes 16 outputs per token.
template <bool Q4, bool Block, int NT>
void group_tile(const uint8_t* g, int64_t nb, const KTile& tt) {
  constexpr int64_t kSuper = Q4 ? kQ4KSuperBytes : kQ6KSuperBytes;
  __m512 acc[NT][12];
  for (int t = 0; t < NT; ++t) {
    for (int k = 0; k < 12; ++k) acc[t][k] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* sb = g + b * kSuper;
    if constexpr (Q4) {
      q4k_block<NT, Block>(sb, b, tt, acc);
    } else {
      q6k_block<NT, Block>(sb, b, tt, acc);
    }
  }
  PARETO_UNROLL
  for (int t = 0; t < NT; ++t) finish<Q4, Block>(acc[t], tt.y[t]);
}

using TileFn = void (*)(const uint8_t*, int64_t, const KTile&);

template <bool Q4, bool Block, int... NT>
TileFn tile_fn(int nt, std::integer_sequence<int, NT...>) {
  constexpr TileFn fns[] = {group_tile<Q4, Block, NT + 1>...};
  return fns[nt - 1];
}

template <bool Block>
TileFn tile_fn(bool q4, int nt) {
  return q4 ? tile_fn<true, Block>(nt, std::make_integer_sequence<int, kQ4KTokens>())
            : tile_fn<false, Block>(nt, std::make_integer_sequence<int, kQ6KTokens>());
}

void groups_avx512(const WeightView& w, const PackedActTerms& terms, int64_t n_tokens,
                   int64_t g_begin, int64_t g_end, float* y) {
  const bool q4 = w.type == TensorType::Q4_K;
  const int64_t nb = w.cols / kQK_K;
  const int64_t gbytes = group_bytes(w.type, w.cols);
  const int64_t x_stride = nb * kKquantTermDwords;  // dwords per token
  // Token blocks outermost so that a block's activation terms (~512 KiB) stay in L2 while every
  // group of the range passes over them.
  const int max_tile = q4 ? kQ4KTokens : kQ6KTokens;
  const int64_t token_block =
      std::max<int64_t>(max_tile, (int64_t{512} << 10) / (x_stride * 4) / max_tile * max_tile);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += token_block) {
    const int64_t t1 = std::min(n_tokens, t0 + token_block);
    for (int64_t g = g_begin; g < g_end; ++g) {
      for (int64_t t = t0; t < t1; t += max_tile) {
        const int nt = static_cast<int>(std::min<int64_t>(max_tile, t1 - t));
        KTile tt;
        for (int k = 0; k < nt; ++k) {
          tt.x[k] = terms.corr.data() + (t + k) * x_stride;
          tt.d[k] = terms.dx.data() + (t + k) * nb;
          tt.y[k] = y + (t + k) * w.rows + g * kPackRows;
        }
        const TileFn fn =
            terms.order == QuantOrder::kBlock ? tile_fn<true>(q4, nt) : tile_fn<false>(q4, nt);
        fn(w.packed + g * gbytes, nb, tt);
      }
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

}  // namespace
#endif  // PARETO_PACKED_KQ_X86

void matmul_groups_kquant(const WeightView& w, const PreparedActivations& x,
                          const PackedActTerms& terms, [[maybe_unused]] int64_t g_begin,
                          [[maybe_unused]] int64_t g_end, [[maybe_unused]] float* y) {
  const int64_t nb = w.cols / kQK_K;
  const int64_t per_token = nb * kKquantTermDwords;
  PARETO_CHECK(packed_kquant(w.type) && x.type == TensorType::Q8_K &&
               terms.dx.size() == static_cast<size_t>(x.n_tokens * nb) &&
               terms.corr.size() == static_cast<size_t>(x.n_tokens * per_token));
#ifdef PARETO_PACKED_KQ_X86
  if (packed_kernels_supported()) return groups_avx512(w, terms, x.n_tokens, g_begin, g_end, y);
#endif
  PARETO_CHECK_MSG(false, "packed weights need AVX-512 VNNI");
}

}  // namespace pareto::kernels::packed
