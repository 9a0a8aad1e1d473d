// The F32/F16/BF16 matmuls and attention of llama.cpp's AVX-512 order (16 lanes) in native
// AVX-512 F/BW/VL, chosen at run time for portable_avx512_kernel_set(); CPUs without AVX-512 keep
// the AVX2 form (two 8-lane halves, kernels_float_simd.cpp) or the lane loops. Per output the
// operations and their order are those of kernels_portable.cpp's lane loops (one 16-lane zmm per
// accumulator), so results are identical bit for bit; what changes is the reuse:
//   - activations are widened to f32 once per block of tokens (exact, so the same values);
//   - decode (ggml_vec_dot order) interleaves kVecRows weight rows per activation row;
//   - prefill (tinyBLAS order) computes register tiles of kTileRows rows x kTileTokens tokens,
//     each output in its own zmm accumulator;
//   - attention sums values per slot over all head dims in registers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/check.h"
#include "kernels/attention_online.h"
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
using avx512::F32Elem;

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

// ggml_vec_dot_{f32,f16,bf16} of kRows weight rows a with one f32 activation row b: 4
// accumulators of 16 lanes over chunks of 64; GGML_F32x16_REDUCE; the tail in float with separate
// multiply and add (F32) or in double (F16/BF16).
template <class E, int kRows>
void vec_dot_rows(const typename E::T* const* a, const float* b, int64_t n, float* out) {
  const int64_t np = n & ~int64_t{63};
  __m512 acc[kRows][4];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < np; i += 64) {
    // The same elements of the next kRows rows (the next group, when rows are consecutive), so
    // that they arrive by the time this group is done: +15% decode bandwidth measured here. The
    // address may lie past the matrix (a prefetch never faults), hence integer arithmetic.
    for (int m = 0; m < kRows; ++m) {
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
  for (int m = 0; m < kRows; ++m) {
    const float main_sum = avx512::reduce4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
    if constexpr (std::is_same_v<E, F32Elem>) {
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
    for (; r + kVecRows <= row_end; r += kVecRows) {
      const T* wr[kVecRows];
      for (int m = 0; m < kVecRows; ++m) wr[m] = reinterpret_cast<const T*>(w.row(r + m));
      for (int64_t t = t0; t < t1; ++t) {
        vec_dot_rows<E, kVecRows>(wr, xf + (t - t0) * stride, w.cols, y + t * w.rows + r);
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

// tinyBLAS outputs of kRows weight rows x kTokens f32 activation rows (stride n): each output is
// its own 16-lane accumulator (lane t sums elements t, t + 16, ... with fma), then reduce_add16,
// as in llamafile_sgemm. n is a multiple of 16. y[t * y_stride + m].
template <class E, int kRows, int kTokens>
void tinyblas_tile(const typename E::T* const* w, const float* x, int64_t n, float* y,
                   int64_t y_stride) {
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
      const __m512 xv = _mm512_load_ps(x + t * n + l);
#pragma GCC unroll 8
      for (int m = 0; m < kRows; ++m) acc[m][t] = _mm512_fmadd_ps(wv[m], xv, acc[m][t]);
    }
  }
  for (int m = 0; m < kRows; ++m) {
    for (int t = 0; t < kTokens; ++t) y[t * y_stride + m] = avx512::hsum16(acc[m][t]);
  }
}

// tinyblas_tile for n_tokens in [1, kTileTokens] (the last tile of a token block may be short).
template <class E, int kRows, int... kT>
void tinyblas_tile_n(int n_tokens, const typename E::T* const* w, const float* x, int64_t n,
                     float* y, int64_t y_stride, std::integer_sequence<int, kT...>) {
  ((n_tokens == kT + 1 ? tinyblas_tile<E, kRows, kT + 1>(w, x, n, y, y_stride) : void()), ...);
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
          tinyblas_tile_n<E, kTileRows>(nt, wp, xt, w.cols, yt + r, w.rows, TileSeq{});
        }
        for (; r < re; ++r) {
          const T* wp[1] = {reinterpret_cast<const T*>(w.row(r))};
          tinyblas_tile_n<E, 1>(nt, wp, xt, w.cols, yt + r, w.rows, TileSeq{});
        }
      }
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
    matmul_tinyblas<E>(w, x, row_begin, row_end, y);
  } else {
    matmul_vec<E>(w, x, row_begin, row_end, y);
  }
}

// softmax numerators of one (token, head): exp(score - max) for visible entries, 0 for the
// others and the padding, in chunks of 16; returns the sum (each chunk's lane sum added to a
// double).
double softmax_numerators(float* probs, int64_t n_padded, const KvHeadView& kv, int32_t q_pos,
                          float max) {
  const __m512 vmax = _mm512_set1_ps(max);
  const __m512i vq = _mm512_set1_epi32(q_pos);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  double sum = 0.0;
  for (int64_t c = 0; c < n_padded; c += 16) {
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(c)), iota);
    const __mmask16 stored = _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(kv.length));
    // Masked lanes are not read (no fault), so the load may reach past the stored entries.
    const __m512i pos = _mm512_maskz_loadu_epi32(stored, kv.positions + c);
    const __mmask16 visible = _mm512_mask_cmple_epi32_mask(stored, pos, vq);
    const __m512 ex = avx512::exp16(_mm512_sub_ps(_mm512_loadu_ps(probs + c), vmax));
    const __m512 ev = _mm512_maskz_mov_ps(visible, ex);
    _mm512_storeu_ps(probs + c, ev);
    sum += static_cast<double>(avx512::hsum16(ev));
  }
  return sum;
}

// Up to 256 head dims in registers (16 zmm).
constexpr int kMaxDimVectors = 16;

// acc[s * hd + d] = the fma chain over entries j = s, s + slots, ... < n_entries of
// values[j][d] * probs[j] (values 0 past `length`: llama.cpp's padded view), per slot s.
template <int kDimVectors>
void slot_sums(const float* values, const float* probs, int64_t length, int64_t n_entries,
               int slots, int hd, float* acc) {
  for (int s = 0; s < slots; ++s) {
    __m512 a[kDimVectors];
    for (auto& v : a) v = _mm512_setzero_ps();
    for (int64_t j = s; j < n_entries; j += slots) {
      const __m512 p = _mm512_set1_ps(probs[j]);
      if (j < length) {
        const float* vr = values + j * hd;
#pragma GCC unroll 16
        for (int d = 0; d < kDimVectors; ++d) {
          a[d] = _mm512_fmadd_ps(_mm512_loadu_ps(vr + 16 * d), p, a[d]);
        }
      } else {  // padding: fma(0, p, acc), as llama.cpp's padded view computes it
#pragma GCC unroll 16
        for (int d = 0; d < kDimVectors; ++d) a[d] = _mm512_fmadd_ps(_mm512_setzero_ps(), p, a[d]);
      }
    }
    for (int d = 0; d < kDimVectors; ++d) _mm512_storeu_ps(acc + s * hd + 16 * d, a[d]);
  }
}

using SlotSumsFn = void (*)(const float*, const float*, int64_t, int64_t, int, int, float*);
template <int... kDv>
constexpr SlotSumsFn slot_sums_for(int dim_vectors, std::integer_sequence<int, kDv...>) {
  SlotSumsFn fn = nullptr;
  ((fn = dim_vectors == kDv + 1 ? slot_sums<kDv + 1> : fn), ...);
  return fn;
}

// ggml_vec_dot_f32(keys[m], q, hd) for 16 consecutive keys, hd a multiple of 64 (so no tail):
// per key 4 accumulators of 16 lanes over chunks of 64, (a0 + a2) + (a1 + a3), then hsum16 of all
// 16 keys at once. q0: the first 16 query values (loaded once by the caller).
inline __m512 scores16(const float* keys, const float* q, __m512 q0, int hd) {
  __m512 v[16];
  for (int m = 0; m < 16; ++m) {
    const float* k = keys + static_cast<int64_t>(m) * hd;
    __m512 a0 = _mm512_fmadd_ps(_mm512_loadu_ps(k), q0, _mm512_setzero_ps());
    __m512 a1 =
        _mm512_fmadd_ps(_mm512_loadu_ps(k + 16), _mm512_loadu_ps(q + 16), _mm512_setzero_ps());
    __m512 a2 =
        _mm512_fmadd_ps(_mm512_loadu_ps(k + 32), _mm512_loadu_ps(q + 32), _mm512_setzero_ps());
    __m512 a3 =
        _mm512_fmadd_ps(_mm512_loadu_ps(k + 48), _mm512_loadu_ps(q + 48), _mm512_setzero_ps());
    for (int i = 64; i < hd; i += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(k + i), _mm512_loadu_ps(q + i), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(k + i + 16), _mm512_loadu_ps(q + i + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(k + i + 32), _mm512_loadu_ps(q + i + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(k + i + 48), _mm512_loadu_ps(q + i + 48), a3);
    }
    v[m] = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
  }
  return avx512::hsum16_x16(v);
}

// Attention as kernels_portable.cpp's attention_items<Width16> (the order of operations is
// described there). head_dim must be a multiple of 16 and at most 256; others take the AVX2 form.
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.head_dim % 16 != 0 || a.head_dim > 16 * kMaxDimVectors) {
    portable_avx512_avx2_kernel_set().attention(a, begin, end);
    return;
  }
  const int hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  const bool single_query = a.n_tokens == 1;
  // Single query: ggml_vec_dot_f32 over the padded entries (4 accumulators of 16 lanes);
  // batch: tinyBLAS (one accumulator of 16 lanes) over the stored entries.
  const int slots = single_query ? 64 : 16;
  const SlotSumsFn sums = slot_sums_for(hd / 16, std::make_integer_sequence<int, kMaxDimVectors>{});
  // Per worker thread, reused: the dispatcher calls once per (KV head, token).
  thread_local std::vector<float> probs;
  thread_local std::vector<float> acc;
  acc.resize(static_cast<size_t>(slots) * static_cast<size_t>(hd));  // slot_sums writes it all
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = item / a.n_heads;
    const int h = static_cast<int>(item % a.n_heads);
    const KvHeadView& kv = a.kv[static_cast<size_t>(h / group)];
    const float* q = a.q + item * hd;
    float* out = a.out + item * hd;
    const int32_t q_pos = a.q_positions[t];
    const int64_t n_padded = (kv.length + 63) / 64 * 64;
    probs.assign(static_cast<size_t>(n_padded), 0.0f);
    // Entries after the last visible one (in a prompt batch, the later tokens' entries: half of
    // all pairs) are neither scored nor, in a batch, summed: their scores would be dropped and
    // their probabilities are exactly 0, and fma(v, 0, acc) == acc for finite values v, so the
    // outputs keep their bits (a non-finite value in such an entry would give NaN in llama.cpp).
    const int visible = visible_end(kv, q_pos);
    const int64_t n_soft = std::min<int64_t>(n_padded, (visible + 15) / 16 * 16);
    // Scores of 16 keys at a time when head_dim is a multiple of 64 (no tail), else 4 keys at a
    // time (an invisible key's score is computed and dropped).
    float max = -INFINITY;
    int j0 = 0;
    if (hd % 64 == 0) {
      const __m512 q0 = _mm512_loadu_ps(q);
      for (; j0 + 16 <= visible; j0 += 16) {
        alignas(64) float s[16];
        _mm512_store_ps(s, scores16(kv.keys + static_cast<int64_t>(j0) * hd, q, q0, hd));
        for (int m = 0; m < 16; ++m) {
          if (kv.positions[j0 + m] > q_pos) continue;
          probs[static_cast<size_t>(j0 + m)] = s[m] * a.scale;
          max = std::max(max, probs[static_cast<size_t>(j0 + m)]);
        }
      }
    }
    for (int j = j0; j < visible; j += kVecRows) {
      const int nk = std::min(kVecRows, visible - j);
      float s[kVecRows];
      if (nk == kVecRows) {
        const float* kp[kVecRows];
        for (int m = 0; m < kVecRows; ++m) kp[m] = kv.keys + static_cast<int64_t>(j + m) * hd;
        vec_dot_rows<F32Elem, kVecRows>(kp, q, hd, s);
      } else {
        for (int m = 0; m < nk; ++m) {
          const float* kp[1] = {kv.keys + static_cast<int64_t>(j + m) * hd};
          vec_dot_rows<F32Elem, 1>(kp, q, hd, s + m);
        }
      }
      for (int m = 0; m < nk; ++m) {
        if (kv.positions[j + m] > q_pos) continue;
        probs[static_cast<size_t>(j + m)] = s[m] * a.scale;
        max = std::max(max, probs[static_cast<size_t>(j + m)]);
      }
    }
    // Past n_soft every numerator is 0 (adding +0.0 to the sum changes nothing).
    const double sum = softmax_numerators(probs.data(), n_soft, kv, q_pos, max);
    const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    const __m512 vinv = _mm512_set1_ps(inv_sum);
    for (int64_t j = 0; j < n_soft; j += 16) {
      _mm512_storeu_ps(probs.data() + j, _mm512_mul_ps(_mm512_loadu_ps(probs.data() + j), vinv));
    }
    sums(kv.values, probs.data(), kv.length, single_query ? n_padded : visible, slots, hd,
         acc.data());
    for (int d = 0; d < hd; d += 16) {
      __m512 lanes[64];
      for (int s = 0; s < slots; ++s) lanes[s] = _mm512_loadu_ps(acc.data() + s * hd + d);
      const __m512 o =
          single_query ? avx512::reduce4_across(lanes) : avx512::reduce_add16_across(lanes);
      _mm512_storeu_ps(out + d, o);
    }
  }
}

// Online-softmax attention (attention_online.h): keys scored as attention_items scores them, the
// 16-lane exp, the accumulator updated 16 dims at a time (entries in order for each dim: the
// same operations per element as the lane loops).
void online_score_keys(const float* keys, int n_keys, const float* q, int hd, float* scores) {
  static_assert(kOnlineBlock == 16);
  if (n_keys == 16 && hd % 64 == 0) {
    _mm512_storeu_ps(scores, scores16(keys, q, _mm512_loadu_ps(q), hd));
    return;
  }
  int m = 0;
  for (; m + kVecRows <= n_keys; m += kVecRows) {
    const float* kp[kVecRows];
    for (int r = 0; r < kVecRows; ++r) kp[r] = keys + static_cast<int64_t>(m + r) * hd;
    vec_dot_rows<F32Elem, kVecRows>(kp, q, hd, scores + m);
  }
  for (; m < n_keys; ++m) {
    const float* kp[1] = {keys + static_cast<int64_t>(m) * hd};
    vec_dot_rows<F32Elem, 1>(kp, q, hd, scores + m);
  }
}

float online_softmax_block(const float* scores, uint32_t visible, float scale, float* max,
                           float* rescale, float* p) {
  const auto k = static_cast<__mmask16>(visible);
  const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(scores), _mm512_set1_ps(scale));
  raise_max(_mm512_mask_reduce_max_ps(k, x), max, rescale);
  const __m512 pv = _mm512_maskz_mov_ps(k, avx512::exp16(_mm512_sub_ps(x, _mm512_set1_ps(*max))));
  _mm512_storeu_ps(p, pv);
  return avx512::hsum16(pv);
}

// kQueries queries x kVecs vectors of 16 dims from d: the value loads are shared by the queries,
// and their independent fma chains overlap.
template <int kQueries, int kVecs>
void online_accumulate_dims(float* const* accs, const float* rescale, const float* values,
                            const float* const* ps, int n, int hd, int d) {
  __m512 a[kQueries][kVecs];
  for (int k = 0; k < kQueries; ++k) {
    for (int v = 0; v < kVecs; ++v) a[k][v] = _mm512_loadu_ps(accs[k] + d + 16 * v);
    if (rescale[k] != 1.0f) {
      const __m512 r = _mm512_set1_ps(rescale[k]);
      for (int v = 0; v < kVecs; ++v) a[k][v] = _mm512_mul_ps(a[k][v], r);
    }
  }
  for (int m = 0; m < n; ++m) {
    const float* vr = values + static_cast<int64_t>(m) * hd + d;
    __m512 x[kVecs];
    for (int v = 0; v < kVecs; ++v) x[v] = _mm512_loadu_ps(vr + 16 * v);
    for (int k = 0; k < kQueries; ++k) {
      const __m512 w = _mm512_set1_ps(ps[k][m]);
      for (int v = 0; v < kVecs; ++v) a[k][v] = _mm512_fmadd_ps(x[v], w, a[k][v]);
    }
  }
  for (int k = 0; k < kQueries; ++k) {
    for (int v = 0; v < kVecs; ++v) _mm512_storeu_ps(accs[k] + d + 16 * v, a[k][v]);
  }
}

template <int kQueries>
void online_accumulate_queries(float* const* accs, const float* rescale, const float* values,
                               const float* const* ps, int n, int hd) {
  int d = 0;
  for (; d + 64 <= hd; d += 64) {
    online_accumulate_dims<kQueries, 4>(accs, rescale, values, ps, n, hd, d);
  }
  for (; d + 16 <= hd; d += 16) {
    online_accumulate_dims<kQueries, 1>(accs, rescale, values, ps, n, hd, d);
  }
  for (int k = 0; k < kQueries; ++k) {
    for (int e = d; e < hd; ++e) {
      float x = rescale[k] != 1.0f ? accs[k][e] * rescale[k] : accs[k][e];
      for (int m = 0; m < n; ++m)
        x = std::fma(values[static_cast<int64_t>(m) * hd + e], ps[k][m], x);
      accs[k][e] = x;
    }
  }
}

void online_accumulate(float* const* accs, const float* rescale, const float* values,
                       const float* const* ps, int n_queries, int n, int hd) {
  static_assert(kOnlineQueries == 4);
  switch (n_queries) {
    case 4:
      online_accumulate_queries<4>(accs, rescale, values, ps, n, hd);
      break;
    case 3:
      online_accumulate_queries<3>(accs, rescale, values, ps, n, hd);
      break;
    case 2:
      online_accumulate_queries<2>(accs, rescale, values, ps, n, hd);
      break;
    default:
      online_accumulate_queries<1>(accs, rescale, values, ps, n, hd);
      break;
  }
}

void attention_online_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  static constexpr OnlineAttentionOps kOps{online_score_keys, online_softmax_block,
                                           online_accumulate};
  online_attention_items(a, begin, end, kOps);
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
    set.attention = attention_items;
    set.attention_online = attention_online_items;
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
