// The F32/F16/BF16 matmuls of llama.cpp's AVX-512 order (16 lanes) in native
// AVX-512 F/BW/VL, chosen at run time for portable_avx512_kernel_set(); CPUs without AVX-512 keep
// the AVX2 form (two 8-lane halves, kernels_float_simd.cpp) or the lane loops. Per output the
// operations and their order are those of kernels_portable.cpp's lane loops (one 16-lane zmm per
// accumulator), so results are identical bit for bit; what changes is the reuse:
//   - activations are widened to f32 once per block of tokens (exact, so the same values);
//   - decode (ggml_vec_dot order) interleaves kVecRows weight rows per activation row;
//   - prefill (tinyBLAS order) computes register tiles of kTileRows rows x kTileTokens tokens,
//     each output in its own zmm accumulator;
//   - attention (kernels_float_avx512_attention.cpp) sums values per slot over all head dims in
//     registers.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/check.h"
#include "kernels/kernel_set.h"
#include "kernels/simd_avx512.h"

namespace pareto::kernels {

#if defined(PARETO_HAVE_AVX512_KERNELS)
namespace {

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif
PARETO_AVX512_WARNINGS_PUSH

using avx512::BF16Elem;
using avx512::F16Elem;
using avx512::f32_tails_x16_tokens;
using avx512::F32Elem;
using avx512::vec_dot_rows;
using avx512::vec_dot_rows_unreduced;

// Tokens whose activations are widened together: kTokenBlock x cols f32 stay in L2.
constexpr int64_t kTokenBlock = 24;
// Decode: rows per activation row (4 accumulators each: 16 of the 32 zmm registers).
constexpr int kVecRows = 4;
// Decode of the F16 x F32 product: rows (weight streams) per pass.
constexpr int kDecodeRowsF16 = 8;
// Prefill tile: 4 x 6 accumulators + 4 weight vectors + 1 activation vector = 29 zmm.
constexpr int kTileRows = 4;
constexpr int kTileTokens = 6;
using TileSeq = std::make_integer_sequence<int, kTileTokens>;
// Several tokens share the next row group's prefetch when a group's weights fit this (L1 data
// cache of the CPUs at hand: 48 KiB); larger groups keep the first token's own prefetch.
constexpr int64_t kSharedPrefetchBytes = 48 * 1024;
// Prefill: weight rows whose tiles meet one activation tile before the next (kept in L1/L2).
constexpr int64_t kRowBlock = 16;

// Activation rows [t0, t1) as f32, each row starting on a 64-byte boundary (row stride
// *stride floats): F32 rows in place when they are aligned so, widened or copied into `scratch`
// otherwise. A zmm load that straddles two cache lines costs about twice one that does not; with
// malloc's 16-byte alignment every activation load of a prompt tile did (F16 prefill measured
// ~1.6x slower in the tile loop alone).
template <class E>
const float* widen_tokens(const PreparedActivations& x, int64_t cols, int64_t t0, int64_t t1,
                          std::vector<float>& scratch, int64_t* stride) {
  using T = typename E::T;
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
  if constexpr (std::is_same_v<E, F32Elem>) {
    if (aligned(x.row(t0)) && (x.row_bytes % 64 == 0 || t1 - t0 == 1)) {
      *stride = cols;
      return reinterpret_cast<const float*>(x.row(t0));
    }
  }
  *stride = (cols + 15) / 16 * 16;
  scratch.resize(static_cast<size_t>((t1 - t0) * *stride + 16));
  float* base = scratch.data();
  while (!aligned(base)) ++base;  // floats are 4-byte aligned: at most 15 steps
  for (int64_t t = t0; t < t1; ++t) {
    const auto* src = reinterpret_cast<const T*>(x.row(t));
    float* dst = base + (t - t0) * *stride;
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) _mm512_store_ps(dst + i, E::load(src + i));
    for (; i < cols; ++i) dst[i] = E::scalar(src[i]);
  }
  return base;
}

template <class E>
void matmul_vec(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                int64_t row_end, float* y) {
  using T = typename E::T;
  thread_local std::vector<float> scratch;  // reused: no allocation (and page faults) per call
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += kTokenBlock) {
    const int64_t t1 = std::min(x.n_tokens, t0 + kTokenBlock);
    int64_t stride = 0;
    const float* xf = widen_tokens<E>(x, w.cols, t0, t1, scratch, &stride);
    int64_t r = row_begin;
    // 16 rows at a time: per token, the rows' accumulators summed horizontally all at once
    // (hsum16_x16: the bits of one hsum16 per row, for a fraction of the shuffles; short rows,
    // e.g. 288, spend more on those sums than on the products), the next rows prefetched (see
    // below: by the first token as it goes, or for groups that fit L1 by every token, a slice
    // after each); then the rows' element tails (n % 64:
    // in F32 one row per lane, every token with one transpose of each weight block; else in
    // double, row by row, as vec_dot_rows).
    const int64_t np = w.cols & ~int64_t{63};
    const int64_t row_stride = w.row_bytes();
    constexpr int kGroup = 16;
    alignas(64) float sums[kTokenBlock * kGroup];
    for (; r + kGroup <= row_end; r += kGroup) {
      const T* rows[kGroup];
      for (int m = 0; m < kGroup; ++m) {
        rows[m] = reinterpret_cast<const T*>(w.data + (r + m) * row_stride);
      }
      // The next group's bytes. A lone token prefetches them a few rows ahead of its own
      // products, and so does the first of several when a group is larger than L1 (the others
      // then read it from L2 while the first streams the next). A group that fits L1 is read
      // from memory by the first token only, in a pass as short as the others' (9 tokens on
      // pycode7m: that pass took as long as the other 8 together); there the tokens share the
      // next group out, a slice of lines after each, so reading it overlaps every token's
      // arithmetic. (Slices for large groups, 1B F16 at 2 threads: ~10% slower, the bursts
      // stall.)
      const bool share = t1 - t0 > 1 && kGroup * row_stride <= kSharedPrefetchBytes;
      const auto* next = reinterpret_cast<const char*>(w.data + (r + kGroup) * row_stride);
      const int64_t next_bytes = std::clamp<int64_t>(row_end - r - kGroup, 0, kGroup) * row_stride;
      for (int64_t t = t0; t < t1; ++t) {
        const float* xt = xf + (t - t0) * stride;
        __m512 v[kGroup];
        for (int g = 0; g < kGroup; g += kVecRows) {
          if (t == t0 && !share) {
            vec_dot_rows_unreduced<E, kVecRows>(rows + g, xt, w.cols, v + g);
          } else {
            vec_dot_rows_unreduced<E, kVecRows, false>(rows + g, xt, w.cols, v + g);
          }
        }
        _mm512_store_ps(sums + (t - t0) * kGroup, avx512::hsum16_x16(v));
        if (share) {
          const int64_t lines = (next_bytes + 63) / 64;
          const int64_t first = lines * (t - t0) / (t1 - t0);
          const int64_t last = lines * (t - t0 + 1) / (t1 - t0);
          for (int64_t l = first; l < last; ++l) _mm_prefetch(next + 64 * l, _MM_HINT_T0);
        }
      }
      if (np != w.cols) {
        if constexpr (std::is_same_v<E, F32Elem>) {
          f32_tails_x16_tokens(rows[0], w.cols, xf, stride, t1 - t0, np, w.cols, sums);
        } else {
          for (int64_t t = t0; t < t1; ++t) {
            const float* xt = xf + (t - t0) * stride;
            for (int m = 0; m < kGroup; ++m) {
              double sum = sums[(t - t0) * kGroup + m];
              for (int64_t i = np; i < w.cols; ++i) {
                sum += static_cast<double>(E::scalar(rows[m][i]) * xt[i]);
              }
              sums[(t - t0) * kGroup + m] = static_cast<float>(sum);
            }
          }
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        std::copy_n(sums + (t - t0) * kGroup, kGroup, y + t * w.rows + r);
      }
    }
    for (; r + kVecRows <= row_end; r += kVecRows) {
      const T* wr[kVecRows];
      for (int m = 0; m < kVecRows; ++m) wr[m] = reinterpret_cast<const T*>(w.row(r + m));
      vec_dot_rows<E, kVecRows>(wr, xf, w.cols, y + t0 * w.rows + r);
      for (int64_t t = t0 + 1; t < t1; ++t) {
        vec_dot_rows<E, kVecRows, true, false>(wr, xf + (t - t0) * stride, w.cols,
                                               y + t * w.rows + r);
      }
    }
    for (; r < row_end; ++r) {
      const T* wr[1] = {reinterpret_cast<const T*>(w.row(r))};
      for (int64_t t = t0; t < t1; ++t) {
        vec_dot_rows<E, 1>(wr, xf + (t - t0) * stride, w.cols, y + t * w.rows + r);
      }
    }
  }
}

// tinyBLAS outputs of kRows weight rows (element type E) x kTokens activation rows (element type
// XE, x_stride elements apart): each output is its own 16-lane accumulator (lane t sums elements
// t, t + 16, ... with fma), then reduce_add16, as in llamafile_sgemm. 16-bit activations are
// widened in the loop as llama.cpp's own tile does (widening is exact). n is a multiple of 16.
// y[t * y_stride + m].
template <class E, class XE, int kRows, int kTokens>
void tinyblas_tile(const typename E::T* const* w, const typename XE::T* x, int64_t x_stride,
                   int64_t n, float* y, int64_t y_stride) {
  __m512 acc[kRows][kTokens];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  for (int64_t l = 0; l < n; l += 16) {
    __m512 wv[kRows];
#pragma GCC unroll 8
    for (int m = 0; m < kRows; ++m) wv[m] = E::load(w[m] + l);
#pragma GCC unroll 8
    for (int t = 0; t < kTokens; ++t) {
      const __m512 xv = XE::load(x + t * x_stride + l);
#pragma GCC unroll 8
      for (int m = 0; m < kRows; ++m) acc[m][t] = _mm512_fmadd_ps(wv[m], xv, acc[m][t]);
    }
  }
  for (int m = 0; m < kRows; ++m) {
    for (int t = 0; t < kTokens; ++t) y[t * y_stride + m] = avx512::hsum16(acc[m][t]);
  }
}

// tinyblas_tile for n_tokens in [1, kTileTokens] (the last tile of a block may be short).
template <class E, class XE, int kRows, int... kT>
void tinyblas_tile_n(int n_tokens, const typename E::T* const* w, const typename XE::T* x,
                     int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                     std::integer_sequence<int, kT...>) {
  ((n_tokens == kT + 1 ? tinyblas_tile<E, XE, kRows, kT + 1>(w, x, x_stride, n, y, y_stride)
                       : void()),
   ...);
}

// Loop order: token block (widened once) > row block > token tile > row tile, so that a tile's
// activation rows come from L1/L2 and the row block's weights from L2. Weights of element type
// E, activations of ActE (F16 weights meet F32 activations in llama.cpp's AMX build).
template <class E, class ActE = E>
void matmul_tinyblas(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                     int64_t row_end, float* y) {
  using T = typename E::T;
  thread_local std::vector<float> scratch;  // reused: no allocation (and page faults) per call
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += kTokenBlock) {
    const int64_t t1 = std::min(x.n_tokens, t0 + kTokenBlock);
    int64_t stride = 0;
    const float* xf = widen_tokens<ActE>(x, w.cols, t0, t1, scratch, &stride);
    PARETO_CHECK(stride == w.cols);  // cols % 16 == 0 here
    for (int64_t rb = row_begin; rb < row_end; rb += kRowBlock) {
      const int64_t re = std::min(row_end, rb + kRowBlock);
      for (int64_t t = t0; t < t1; t += kTileTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kTileTokens, t1 - t));
        const float* xt = xf + (t - t0) * w.cols;
        float* yt = y + t * w.rows;
        int64_t r = rb;
        for (; r + kTileRows <= re; r += kTileRows) {
          const T* wp[kTileRows];
          for (int m = 0; m < kTileRows; ++m) wp[m] = reinterpret_cast<const T*>(w.row(r + m));
          tinyblas_tile_n<E, F32Elem, kTileRows>(nt, wp, xt, w.cols, w.cols, yt + r, w.rows,
                                                 TileSeq{});
        }
        for (; r < re; ++r) {
          const T* wp[1] = {reinterpret_cast<const T*>(w.row(r))};
          tinyblas_tile_n<E, F32Elem, 1>(nt, wp, xt, w.cols, w.cols, yt + r, w.rows, TileSeq{});
        }
      }
    }
  }
}

// Prefill of 16-bit weights against 16-bit activations. Loop order: token block > row tile >
// token tile, as llama.cpp's job of 4 x 6 tiles: a row tile's weights (kTileRows rows, 16 KiB at
// 2048 columns) stay in L1 while the block's activations come from L2. Measured on Zen 5 (one
// thread, 64 tokens, the 1B shapes) against widening the activations to f32 first (as
// matmul_tinyblas): 1.10-1.20x; f32 tiles from copies widened once (no conversions in the tile
// loop), K blocks or weights streamed past L1-resident activations were all slower: the tile is
// bound by what it moves from L2, not by the conversions.
constexpr int64_t kNarrowTokenBlock = 72;

template <class E>
void matmul_tinyblas_narrow(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                            int64_t row_end, float* y) {
  using T = typename E::T;
  const int64_t x_stride = x.row_bytes / static_cast<int64_t>(sizeof(T));
  const auto tiles = [&]<int kRows>(const T* const* wp, int64_t r, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t += kTileTokens) {
      const int nt = static_cast<int>(std::min<int64_t>(kTileTokens, t1 - t));
      tinyblas_tile_n<E, E, kRows>(nt, wp, reinterpret_cast<const T*>(x.row(t)), x_stride, w.cols,
                                   y + t * w.rows + r, w.rows, TileSeq{});
    }
  };
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += kNarrowTokenBlock) {
    const int64_t t1 = std::min(x.n_tokens, t0 + kNarrowTokenBlock);
    int64_t r = row_begin;
    for (; r + kTileRows <= row_end; r += kTileRows) {
      const T* wp[kTileRows];
      for (int m = 0; m < kTileRows; ++m) wp[m] = reinterpret_cast<const T*>(w.row(r + m));
      tiles.template operator()<kTileRows>(wp, r, t0, t1);
    }
    for (; r < row_end; ++r) {
      const T* wp[1] = {reinterpret_cast<const T*>(w.row(r))};
      tiles.template operator()<1>(wp, r, t0, t1);
    }
  }
}

// One token of llama.cpp's AMX-build F16 product: the tinyBLAS lane structure (one 16-lane
// accumulator per row over the whole row, then reduce_add16) for kRows rows, with decode's
// prefetch of the next rows (as vec_dot_rows). n is a multiple of 16.
template <int kRows>
void f16_f32act_rows_1token(const uint16_t* const* a, const float* b, int64_t n, float* out) {
  __m512 acc[kRows];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t l = 0; l < n; l += 16) {
    if (l % 64 == 0) {
      for (int m = 0; m < kRows; ++m) {
        const uintptr_t next = reinterpret_cast<uintptr_t>(a[m] + l) + kRows * n * sizeof(*a[m]);
        for (uintptr_t line = 0; line < 64 * sizeof(*a[m]); line += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(next + line), _MM_HINT_T0);
        }
      }
    }
    const __m512 bv = _mm512_load_ps(b + l);
#pragma GCC unroll 8
    for (int m = 0; m < kRows; ++m) {
      acc[m] = _mm512_fmadd_ps(F16Elem::load(a[m] + l), bv, acc[m]);
    }
  }
  for (int m = 0; m < kRows; ++m) out[m] = avx512::hsum16(acc[m]);
}

// KernelSet::matmul_f16_f32act: F16 weights x unrounded F32 activations (x.type F32), the order of
// llama.cpp's AMX build (tinygemm_kernel_avx) for every token count; cols % 16 == 0.
void matmul_f16_f32act(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                       int64_t row_end, float* y) {
  PARETO_CHECK(x.type == TensorType::F32 && w.cols % 16 == 0);
  if (x.n_tokens >= 2) return matmul_tinyblas<F16Elem, F32Elem>(w, x, row_begin, row_end, y);
  thread_local std::vector<float> scratch;
  int64_t stride = 0;
  const float* xf = widen_tokens<F32Elem>(x, w.cols, 0, 1, scratch, &stride);
  int64_t r = row_begin;
  for (; r + kDecodeRowsF16 <= row_end; r += kDecodeRowsF16) {
    const uint16_t* wr[kDecodeRowsF16];
    for (int m = 0; m < kDecodeRowsF16; ++m)
      wr[m] = reinterpret_cast<const uint16_t*>(w.row(r + m));
    f16_f32act_rows_1token<kDecodeRowsF16>(wr, xf, w.cols, y + r);
  }
  for (; r < row_end; ++r) {
    const uint16_t* wr[1] = {reinterpret_cast<const uint16_t*>(w.row(r))};
    f16_f32act_rows_1token<1>(wr, xf, w.cols, y + r);
  }
}

// ggml_compute_forward_mul_mat's choice, as kernels_portable.cpp's matmul_float_rows.
template <class E>
void matmul_float(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                  int64_t row_end, float* y) {
  if (x.n_tokens >= 2 && w.cols % 16 == 0 && w.rows % 4 == 0) {
    if constexpr (std::is_same_v<E, F32Elem>) {
      matmul_tinyblas<E>(w, x, row_begin, row_end, y);
    } else {
      matmul_tinyblas_narrow<E>(w, x, row_begin, row_end, y);
    }
  } else {
    matmul_vec<E>(w, x, row_begin, row_end, y);
  }
}

PARETO_AVX512_WARNINGS_POP
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

}  // namespace

bool float_avx512_supported() {
  return avx512::avx512_supported();
}

const KernelSet& portable_avx512_native_kernel_set() {
  static const KernelSet kSet = [] {
    KernelSet set = portable_avx512_lanes_kernel_set();
    if (!float_avx512_supported()) return set;
    set.matmul_f32 = matmul_float<F32Elem>;
    set.matmul_f16 = matmul_float<F16Elem>;
    set.matmul_bf16 = matmul_float<BF16Elem>;
    set.matmul_f16_f32act = matmul_f16_f32act;
    // matmul_vec sums every token as a lone token is summed (the one-token branch above).
    set.matmul_f32_each_token = matmul_vec<F32Elem>;
    set.matmul_f16_each_token = matmul_vec<F16Elem>;
    set.matmul_bf16_each_token = matmul_vec<BF16Elem>;
    set.attention = avx512_attention_items;  // kernels_float_avx512_attention.cpp
    set.attention_online = avx512_attention_online_items;
    return set;
  }();
  return kSet;
}

#else  // no x86-64

bool float_avx512_supported() {
  return false;
}
const KernelSet& portable_avx512_native_kernel_set() {
  return portable_avx512_lanes_kernel_set();
}

#endif

}  // namespace pareto::kernels
