// AVX-512 VNNI kernels over the packed Q4_0 / Q8_0 layout (quant_packed.h), one zmm lane per row.
// Integer parts: vpdpbusd multiplies unsigned weight bytes by signed activation bytes and adds
// the four products of a lane without saturation, so each lane holds the exact k-group dot plus
// the activation-only offset (8 * sum(x_block) for Q4_0 nibbles 0..15, 128 * sum(x_group) for
// Q8_0 bytes w + 128); the accumulator starts at minus that offset. |dot| <= 32 * 128 * 127, far
// from int32 limits. Float parts are those of the reference lane loops, per row:
//   Q4_0 (repacked order): acc = fma((float)s_b, d_w * d_x, acc) over blocks b;
//   Q8_0 (lanes order): acc[t] = fma(d_w * d_x, (float)lane_t, acc[t]), then hsum8(acc);
//   Q8_0 (block order): as Q4_0, acc = fma((float)s_b, d_w * d_x, acc).
// Built with -ffp-contract=off: nothing is fused beyond the fma intrinsics.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "base/check.h"
#include "base/half.h"
#include "kernels/quant.h"
#include "kernels/quant_packed.h"
#include "kernels/simd_avx512.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PARETO_PACKED_X86 1
#include <immintrin.h>
#endif

namespace pareto::kernels {

#ifdef PARETO_PACKED_X86
namespace {

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 flags the _mm512_undefined_ps() pass-through inside _mm512_cvtph_ps / _mm512_cvtepi32_ps.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

constexpr int64_t kActBlockBytes = sizeof(BlockQ8_0);  // 34: fp16 d, then 32 int8
constexpr int kQ4Tokens = 8;        // tokens per weight load, Q4_0: 8 weight + 8 accumulator zmm
constexpr int kQ8Tokens = 3;        // Q8_0: 8 accumulators per token (one per k-group lane)
constexpr int kDecodeGroups = 4;    // Q4_0 decode: groups (weight streams) interleaved
constexpr int kQ8DecodeGroups = 2;  // Q8_0 decode: 8 accumulators per group

// Full unrolling of the fixed-count loops keeps the accumulators in registers (GCC otherwise
// leaves some loops rolled and the arrays on the stack).
#define PARETO_UNROLL _Pragma("GCC unroll 16")

// Software prefetch distance into the packed stream: a single core's hardware prefetch alone
// leaves decode (a pure stream of weights) well below memory bandwidth. Prefetches may run past
// a group's end into the next group or past the buffer; they never fault.
constexpr int64_t kPrefetchBytes = 4096;

// Prefetches `lines` cache lines from p.
inline void prefetch(const void* p, int lines) {
  for (int i = 0; i < lines; ++i) {
    _mm_prefetch(static_cast<const char*>(p) + i * 64, _MM_HINT_T0);
  }
}

// The 4 activation bytes of k-group `g` of block `b`, in every lane.
inline __m512i act_group(const uint8_t* x_row, int64_t b, int g) {
  int32_t v;
  std::memcpy(&v, x_row + b * kActBlockBytes + 2 + 4 * g, sizeof(v));
  return _mm512_set1_epi32(v);
}

void prepare_terms_avx512(TensorType type, const PreparedActivations& x, int64_t n_blocks,
                          QuantOrder order, PackedActTerms& terms) {
  // Per-group terms only for the Q8_0 lanes order; one per block otherwise.
  const bool q8 = type == TensorType::Q8_0 && order == QuantOrder::kLanes;
  const int32_t block_offset = type == TensorType::Q8_0 ? -128 : -8;
  terms.order = order;
  terms.dx.resize(static_cast<size_t>(x.n_tokens * n_blocks));
  terms.corr.resize(static_cast<size_t>(x.n_tokens * n_blocks * (q8 ? 8 : 1)));
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t t = 0; t < x.n_tokens; ++t) {
    const uint8_t* row = x.row(t);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint8_t* block = row + b * kActBlockBytes;
      uint16_t d;
      std::memcpy(&d, block, sizeof(d));
      const int64_t i = t * n_blocks + b;
      terms.dx[static_cast<size_t>(i)] = f16_to_f32(d);
      // 8 k-group sums of the signed activation bytes (1 * x, four per lane).
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, qs);
      if (q8) {
        const __m256i corr = _mm256_mullo_epi32(sums, _mm256_set1_epi32(-128));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(&terms.corr[static_cast<size_t>(8 * i)]),
                            corr);
      } else {
        alignas(32) int32_t s[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(s), sums);
        terms.corr[static_cast<size_t>(i)] =
            block_offset * (s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]);
      }
    }
  }
}

// Where NT tokens' inputs and outputs are.
struct TokenTile {
  const uint8_t* x[kQ4Tokens];     // activation rows (Q8_0 blocks)
  const float* dx[kQ4Tokens];      // [n_blocks]
  const int32_t* corr[kQ4Tokens];  // [n_blocks] (Q4_0) or [n_blocks * 8] (Q8_0)
  float* y[kQ4Tokens];             // 16 outputs each
};

// The 8 k-group weight vectors of block b of a group: Q4_0 (kQ8 false) unpacks 4 vectors of
// nibbles (k-group j low, j + 4 high; 0..15); Q8_0 loads 8 vectors of bytes w + 128.
template <bool kQ8>
inline void block_weights(const uint8_t* qs, int64_t b, __m512i (&w)[8]) {
  if constexpr (kQ8) {
    PARETO_UNROLL
    for (int j = 0; j < 8; ++j) w[j] = _mm512_load_si512(qs + (8 * b + j) * packed::kVecBytes);
  } else {
    const __m512i low = _mm512_set1_epi8(0x0f);
    PARETO_UNROLL
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_load_si512(qs + (4 * b + j) * packed::kVecBytes);
      w[j] = _mm512_and_si512(v, low);
      w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  }
}

// One group x NT tokens in the one-float-per-block order: Q4_0's repacked order, or the Q8_0
// block order (kQ8), the same arithmetic over their integer block sums.
template <bool kQ8, int NT>
void block_order_group(const uint8_t* qs, const uint16_t* d, int64_t n_blocks,
                       const TokenTile& tt) {
  constexpr int kVecs = kQ8 ? 8 : 4;  // 64-byte vectors per block
  __m512 acc[NT];
  PARETO_UNROLL
  for (int k = 0; k < NT; ++k) acc[k] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    prefetch(qs + kVecs * b * packed::kVecBytes + kPrefetchBytes, kVecs);
    if ((b & 1) == 0) {
      prefetch(d + (b + kPrefetchBytes / (kVecs * packed::kVecBytes)) * kPackRows, 1);
    }
    __m512i w[8];  // k-group j (elements 4j..4j+3) of the 16 rows
    block_weights<kQ8>(qs, b, w);
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPackRows)));
    PARETO_UNROLL
    for (int k = 0; k < NT; ++k) {
      // Two independent chains, summed exactly.
      __m512i s0 = _mm512_set1_epi32(tt.corr[k][b]);
      __m512i s1 = _mm512_setzero_si512();
      PARETO_UNROLL
      for (int j = 0; j < 4; ++j) {
        s0 = _mm512_dpbusd_epi32(s0, w[j], act_group(tt.x[k], b, j));
        s1 = _mm512_dpbusd_epi32(s1, w[j + 4], act_group(tt.x[k], b, j + 4));
      }
      const __m512 sf = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[k] = _mm512_fmadd_ps(sf, _mm512_mul_ps(dw, _mm512_set1_ps(tt.dx[k][b])), acc[k]);
    }
  }
  PARETO_UNROLL
  for (int k = 0; k < NT; ++k) _mm512_storeu_ps(tt.y[k], acc[k]);
}

// One Q8_0 group x NT tokens, lanes order, over blocks [b0, b1) of n_blocks: the accumulators
// start from `state` ([NT][8][16] floats; zero when b0 == 0) and return to it, or, at the last
// block, are summed into tt.y (ggml::hsum8 per row); over all blocks it is q8_group. Small
// batches (q8_small_batch_groups) run every token tile on one span of blocks before the next: that
// keeps the span's weights in L1 for the later tiles and spreads the first tile's
// memory reads over all the tokens' arithmetic (one tile per whole group leaves the weight
// stream waiting on memory for a third of the work, then computes from cache).
template <int NT>
void q8_group_span(const uint8_t* qs, const uint16_t* d, int64_t b0, int64_t b1, int64_t n_blocks,
                   const TokenTile& tt, float* state) {
  __m512 acc[NT][8];
  PARETO_UNROLL
  for (int k = 0; k < NT; ++k) {
    PARETO_UNROLL
    for (int g = 0; g < 8; ++g) {
      acc[k][g] = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(state + (8 * k + g) * 16);
    }
  }
  for (int64_t b = b0; b < b1; ++b) {
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPackRows)));
    __m512 dk[NT];
    PARETO_UNROLL
    for (int k = 0; k < NT; ++k) dk[k] = _mm512_mul_ps(dw, _mm512_set1_ps(tt.dx[k][b]));
    if ((b & 1) == 0) prefetch(d + (b + kPrefetchBytes / (8 * packed::kVecBytes)) * kPackRows, 1);
    PARETO_UNROLL
    for (int g = 0; g < 8; ++g) {
      prefetch(qs + (8 * b + g) * packed::kVecBytes + kPrefetchBytes, 1);
      const __m512i w = _mm512_load_si512(qs + (8 * b + g) * packed::kVecBytes);
      PARETO_UNROLL
      for (int k = 0; k < NT; ++k) {
        const __m512i lane = _mm512_dpbusd_epi32(_mm512_set1_epi32(tt.corr[k][8 * b + g]), w,
                                                 act_group(tt.x[k], b, g));
        acc[k][g] = _mm512_fmadd_ps(dk[k], _mm512_cvtepi32_ps(lane), acc[k][g]);
      }
    }
  }
  if (b1 < n_blocks) {
    PARETO_UNROLL
    for (int k = 0; k < NT; ++k) {
      PARETO_UNROLL
      for (int g = 0; g < 8; ++g) _mm512_store_ps(state + (8 * k + g) * 16, acc[k][g]);
    }
    return;
  }
  // ggml::hsum8 per row: (v0 + v4), (v1 + v5), (v2 + v6), (v3 + v7); (s0 + s2) + (s1 + s3).
  PARETO_UNROLL
  for (int k = 0; k < NT; ++k) {
    const __m512 s0 = _mm512_add_ps(acc[k][0], acc[k][4]);
    const __m512 s1 = _mm512_add_ps(acc[k][1], acc[k][5]);
    const __m512 s2 = _mm512_add_ps(acc[k][2], acc[k][6]);
    const __m512 s3 = _mm512_add_ps(acc[k][3], acc[k][7]);
    _mm512_storeu_ps(tt.y[k], _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
  }
}

// One Q8_0 group x NT tokens, lanes order, all blocks.
template <int NT>
void q8_group(const uint8_t* qs, const uint16_t* d, int64_t n_blocks, const TokenTile& tt) {
  q8_group_span<NT>(qs, d, 0, n_blocks, n_blocks, tt, nullptr);
}

using SpanFn = void (*)(const uint8_t*, const uint16_t*, int64_t, int64_t, int64_t,
                        const TokenTile&, float*);

// Small Q8_0 batches (lanes order): per group, spans of kQ8SpanBlocks blocks, every token tile
// over a span before the next (q8_group_span).
constexpr int64_t kQ8SmallBatch = 16;  // tokens: at most this many take the span path
constexpr int64_t kQ8SpanBlocks = 16;  // 8 KiB of weights per span

void q8_small_batch_groups(const uint8_t* packed_w, int64_t group_bytes, int64_t qs_bytes,
                           int64_t n_blocks, int64_t rows, const PreparedActivations& x,
                           const PackedActTerms& terms, int64_t g_begin, int64_t g_end, float* y) {
  constexpr int kQ8Tokenss = kQ8SmallBatch;
  constexpr SpanFn fns[] = {q8_group_span<1>, q8_group_span<2>, q8_group_span<3>};
  static_assert(kQ8Tokens == 3);
  alignas(64) float state[kQ8Tokenss][kQ8Tokens * 8 * 16];
  TokenTile tiles[kQ8Tokenss];
  int counts[kQ8Tokenss];
  const int n_tiles = static_cast<int>((x.n_tokens + kQ8Tokens - 1) / kQ8Tokens);
  for (int i = 0; i < n_tiles; ++i) {
    const int64_t t0 = int64_t{i} * kQ8Tokens;
    counts[i] = static_cast<int>(std::min<int64_t>(kQ8Tokens, x.n_tokens - t0));
    for (int k = 0; k < counts[i]; ++k) {
      tiles[i].x[k] = x.row(t0 + k);
      tiles[i].dx[k] = terms.dx.data() + (t0 + k) * n_blocks;
      tiles[i].corr[k] = terms.corr.data() + (t0 + k) * n_blocks * 8;
    }
  }
  for (int64_t g = g_begin; g < g_end; ++g) {
    const uint8_t* qs = packed_w + g * group_bytes;
    const auto* d = reinterpret_cast<const uint16_t*>(qs + qs_bytes);
    for (int i = 0; i < n_tiles; ++i) {
      for (int k = 0; k < counts[i]; ++k) {
        tiles[i].y[k] = y + (int64_t{i} * kQ8Tokens + k) * rows + g * kPackRows;
      }
    }
    for (int64_t b0 = 0; b0 < n_blocks; b0 += kQ8SpanBlocks) {
      const int64_t b1 = std::min(n_blocks, b0 + kQ8SpanBlocks);
      for (int i = 0; i < n_tiles; ++i) {
        fns[counts[i] - 1](qs, d, b0, b1, n_blocks, tiles[i], state[i]);
      }
    }
  }
}

// Decode (one token): G consecutive groups interleaved block by block, so that each thread keeps
// G weight streams in flight (one stream per core leaves memory bandwidth unused) and the
// activation broadcasts serve all G groups. Per row the same operations as block_order_group /
// q8_group.
template <bool kQ8, int G>
void block_order_groups_decode(const uint8_t* qs0, int64_t group_bytes, int64_t qs_bytes,
                               int64_t n_blocks, const TokenTile& tt) {
  constexpr int kVecs = kQ8 ? 8 : 4;
  __m512 acc[G];
  PARETO_UNROLL
  for (int i = 0; i < G; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m512i x[8];
    PARETO_UNROLL
    for (int j = 0; j < 8; ++j) x[j] = act_group(tt.x[0], b, j);
    const __m512 dx = _mm512_set1_ps(tt.dx[0][b]);
    const __m512i corr = _mm512_set1_epi32(tt.corr[0][b]);
    PARETO_UNROLL
    for (int i = 0; i < G; ++i) {
      const uint8_t* qs = qs0 + i * group_bytes;
      const auto* d = reinterpret_cast<const uint16_t*>(qs + qs_bytes);
      prefetch(qs + kVecs * b * packed::kVecBytes + kPrefetchBytes, kVecs);
      if ((b & 1) == 0) {
        prefetch(d + (b + kPrefetchBytes / (kVecs * packed::kVecBytes)) * kPackRows, 1);
      }
      __m512i w[8];
      block_weights<kQ8>(qs, b, w);
      __m512i s0 = corr;
      __m512i s1 = _mm512_setzero_si512();
      PARETO_UNROLL
      for (int j = 0; j < 4; ++j) {
        s0 = _mm512_dpbusd_epi32(s0, w[j], x[j]);
        s1 = _mm512_dpbusd_epi32(s1, w[j + 4], x[j + 4]);
      }
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPackRows)));
      const __m512 sf = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[i] = _mm512_fmadd_ps(sf, _mm512_mul_ps(dw, dx), acc[i]);
    }
  }
  PARETO_UNROLL
  for (int i = 0; i < G; ++i) _mm512_storeu_ps(tt.y[0] + i * kPackRows, acc[i]);
}

template <int G>
void q8_groups_decode(const uint8_t* qs0, int64_t group_bytes, int64_t qs_bytes, int64_t n_blocks,
                      const TokenTile& tt) {
  __m512 acc[G][8];
  PARETO_UNROLL
  for (int i = 0; i < G; ++i) {
    PARETO_UNROLL
    for (int g = 0; g < 8; ++g) acc[i][g] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m512 dx = _mm512_set1_ps(tt.dx[0][b]);
    PARETO_UNROLL
    for (int i = 0; i < G; ++i) {
      const uint8_t* qs = qs0 + i * group_bytes;
      const auto* d = reinterpret_cast<const uint16_t*>(qs + qs_bytes);
      const __m512 dk = _mm512_mul_ps(
          _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPackRows))),
          dx);
      if ((b & 1) == 0) prefetch(d + (b + kPrefetchBytes / (8 * packed::kVecBytes)) * kPackRows, 1);
      prefetch(qs + 8 * b * packed::kVecBytes + kPrefetchBytes, 8);
      PARETO_UNROLL
      for (int g = 0; g < 8; ++g) {
        const __m512i w = _mm512_load_si512(qs + (8 * b + g) * packed::kVecBytes);
        const __m512i lane = _mm512_dpbusd_epi32(_mm512_set1_epi32(tt.corr[0][8 * b + g]), w,
                                                 act_group(tt.x[0], b, g));
        acc[i][g] = _mm512_fmadd_ps(dk, _mm512_cvtepi32_ps(lane), acc[i][g]);
      }
    }
  }
  // ggml::hsum8 per row, as q8_group.
  PARETO_UNROLL
  for (int i = 0; i < G; ++i) {
    const __m512 s0 = _mm512_add_ps(acc[i][0], acc[i][4]);
    const __m512 s1 = _mm512_add_ps(acc[i][1], acc[i][5]);
    const __m512 s2 = _mm512_add_ps(acc[i][2], acc[i][6]);
    const __m512 s3 = _mm512_add_ps(acc[i][3], acc[i][7]);
    _mm512_storeu_ps(tt.y[0] + i * kPackRows,
                     _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
  }
}

using GroupFn = void (*)(const uint8_t*, const uint16_t*, int64_t, const TokenTile&);

template <bool kQ8, int... NT>
constexpr GroupFn block_order_table(int nt, std::integer_sequence<int, NT...>) {
  constexpr GroupFn fns[] = {block_order_group<kQ8, NT + 1>...};
  return fns[nt - 1];
}
template <int... NT>
constexpr GroupFn q8_table(int nt, std::integer_sequence<int, NT...>) {
  constexpr GroupFn fns[] = {q8_group<NT + 1>...};
  return fns[nt - 1];
}

void matmul_groups_avx512(const WeightView& w, const PreparedActivations& x,
                          const PackedActTerms& terms, int64_t g_begin, int64_t g_end, float* y) {
  // q8: the Q8_0 lanes order; Q4_0 and the Q8_0 block order share one structure.
  const bool q8_block = w.type == TensorType::Q8_0 && terms.order == QuantOrder::kBlock;
  const bool q8 = w.type == TensorType::Q8_0 && !q8_block;
  const int64_t n_blocks = w.cols / kQuantBlock;
  const int64_t corr_stride = n_blocks * (q8 ? 8 : 1);
  const int64_t group_bytes = packed::group_bytes(w.type, w.cols);
  const int64_t qs_bytes = n_blocks * packed::vecs_per_block(w.type) * packed::kVecBytes;
  const int max_tile = q8 ? kQ8Tokens : kQ4Tokens;
  int64_t g = g_begin;
  if (x.n_tokens == 1) {
    TokenTile tt;
    tt.x[0] = x.row(0);
    tt.dx[0] = terms.dx.data();
    tt.corr[0] = terms.corr.data();
    const int64_t step = q8 ? kQ8DecodeGroups : kDecodeGroups;
    for (; g + step <= g_end; g += step) {
      tt.y[0] = y + g * kPackRows;
      const uint8_t* qs = w.packed + g * group_bytes;
      if (q8) {
        q8_groups_decode<kQ8DecodeGroups>(qs, group_bytes, qs_bytes, n_blocks, tt);
      } else if (q8_block) {
        block_order_groups_decode<true, kDecodeGroups>(qs, group_bytes, qs_bytes, n_blocks, tt);
      } else {
        block_order_groups_decode<false, kDecodeGroups>(qs, group_bytes, qs_bytes, n_blocks, tt);
      }
    }
  }
  if (q8 && x.n_tokens > 1 && x.n_tokens <= kQ8SmallBatch) {
    return q8_small_batch_groups(w.packed, group_bytes, qs_bytes, n_blocks, w.rows, x, terms,
                                 g_begin, g_end, y);
  }
  // Token blocks outermost: a block's activation rows (~512 KiB) stay in L2 while every group of
  // the range passes over them; otherwise long prompts stream all activations from L3 per group.
  const int64_t token_block =
      std::max<int64_t>(max_tile, (int64_t{512} << 10) / x.row_bytes / max_tile * max_tile);
  const int64_t g_first = g;
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += token_block) {
    const int64_t t1 = std::min(x.n_tokens, t0 + token_block);
    for (g = g_first; g < g_end; ++g) {
      const uint8_t* qs = w.packed + g * group_bytes;
      const auto* d = reinterpret_cast<const uint16_t*>(qs + qs_bytes);
      for (int64_t t = t0; t < t1; t += max_tile) {
        const int nt = static_cast<int>(std::min<int64_t>(max_tile, t1 - t));
        TokenTile tt;
        for (int k = 0; k < nt; ++k) {
          tt.x[k] = x.row(t + k);
          tt.dx[k] = terms.dx.data() + (t + k) * n_blocks;
          tt.corr[k] = terms.corr.data() + (t + k) * corr_stride;
          tt.y[k] = y + (t + k) * w.rows + g * kPackRows;
        }
        const auto tiles = std::make_integer_sequence<int, kQ4Tokens>();
        const GroupFn fn = q8         ? q8_table(nt, std::make_integer_sequence<int, kQ8Tokens>())
                           : q8_block ? block_order_table<true>(nt, tiles)
                                      : block_order_table<false>(nt, tiles);
        fn(qs, d, n_blocks, tt);
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
#endif  // PARETO_PACKED_X86

bool packed_kernels_supported() {
#if defined(PARETO_PACKED_X86) && defined(PARETO_HAVE_AVX512_KERNELS)
  return avx512::avx512_vnni_supported();
#else
  return false;
#endif
}

void prepare_packed_terms(TensorType weight_type, const PreparedActivations& x, int64_t cols,
                          PackedActTerms& terms, [[maybe_unused]] QuantOrder order) {
  if (packed::packed_kquant(weight_type)) {
    terms.order = order;
    return prepare_packed_kquant_terms(weight_type, x, cols, terms);
  }
  PARETO_CHECK(x.type == TensorType::Q8_0 && x.row_bytes == row_bytes(TensorType::Q8_0, cols));
#ifdef PARETO_PACKED_X86
  if (packed_kernels_supported()) {
    return prepare_terms_avx512(weight_type, x, cols / 32, order, terms);
  }
#endif
  PARETO_CHECK_MSG(false, "packed weights need AVX-512 VNNI");
}

namespace packed {

void matmul_groups(const WeightView& w, const PreparedActivations& x, const PackedActTerms& terms,
                   [[maybe_unused]] int64_t g_begin, [[maybe_unused]] int64_t g_end,
                   [[maybe_unused]] float* y) {
  const int64_t n_blocks = w.cols / kQuantBlock;
  const bool q8_lanes = w.type == TensorType::Q8_0 && terms.order == QuantOrder::kLanes;
  const auto per_token = static_cast<size_t>(n_blocks * (q8_lanes ? 8 : 1));
  PARETO_CHECK(terms.dx.size() == static_cast<size_t>(x.n_tokens * n_blocks) &&
               terms.corr.size() == per_token * static_cast<size_t>(x.n_tokens));
#ifdef PARETO_PACKED_X86
  if (packed_kernels_supported()) return matmul_groups_avx512(w, x, terms, g_begin, g_end, y);
#endif
  PARETO_CHECK_MSG(false, "packed weights need AVX-512 VNNI");
}

}  // namespace packed
}  // namespace pareto::kernels
