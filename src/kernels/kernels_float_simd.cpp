// The F32/F16/BF16 matmuls and attention of the llama.cpp-order kernel sets in AVX2+FMA+F16C,
// chosen at run time; CPUs without them keep the lane loops of kernels_portable.cpp. Same lane
// structure as those loops (the mirrored llama.cpp build defines it, not this CPU): kKv = 1 is
// the AVX2 order (8 lanes), kKv = 2 the AVX-512 order (16 lanes as two 8-lane vectors; CPUs with
// AVX-512 run kernels_float_avx512.cpp instead, this one stays for those without). Per
// output the operations and their order are unchanged, so results are identical bit for bit;
// what changes is that one weight row load now serves a tile of rows x tokens (prefill) and
// attention sums values 8 dims at a time.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/attention_online.h"
#include "kernels/kernel_set.h"
#include "kernels/simd_avx2.h"

namespace pareto::kernels {

#if defined(PARETO_HAVE_AVX2_KERNELS)
namespace {
using avx2::BF16Elem;
using avx2::F16Elem;
using avx2::F32Elem;
// F32 values that are F16 values (an F16 cache's decoded keys, a query rounded to F16): loaded as
// F32, but summed in ggml_vec_dot_f16's order (vec_dot_rows: the tail in double).
struct F16ValuedF32Elem : F32Elem {};

// ggml_vec_dot_{f32,f16,bf16} of kRows rows with one activation row (interleaved for more
// independent fma chains): 4 accumulators of W = 8 kKv lanes over chunks of 4W; accumulator
// vector k covers elements i + 8k .. i + 8k + 7 of each chunk (lanes 8(k % kKv).. of accumulator
// k / kKv). The tail: F32 in float with separate multiply and add, F16/BF16 in double.
template <class E, int kKv, int kRows>
PARETO_AVX2_TARGET void vec_dot_rows(const typename E::T* const* a, const typename E::T* b,
                                     int64_t n, float* out) {
  constexpr int kW = 8 * kKv;
  constexpr int kAcc = 4 * kKv;
  const int64_t np = n & ~int64_t{4 * kW - 1};
  __m256 acc[kRows][kAcc];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < np; i += 4 * kW) {
    for (int k = 0; k < kAcc; ++k) {
      const __m256 bv = E::load(b + i + 8 * k);
      for (int m = 0; m < kRows; ++m) {
        acc[m][k] = _mm256_fmadd_ps(E::load(a[m] + i + 8 * k), bv, acc[m][k]);
      }
    }
  }
  for (int m = 0; m < kRows; ++m) {
    const float main_sum = avx2::reduce4_reg<kKv>(acc[m]);
    if constexpr (std::is_same_v<E, F32Elem>) {
      float sum = main_sum;
      for (int64_t i = np; i < n; ++i) sum += a[m][i] * b[i];
      out[m] = sum;
    } else {
      double sum = main_sum;
      for (int64_t i = np; i < n; ++i) {
        sum += static_cast<double>(E::scalar(a[m][i]) * E::scalar(b[i]));
      }
      out[m] = static_cast<float>(sum);
    }
  }
}

template <class E, int kKv>
PARETO_AVX2_TARGET float vec_dot(const typename E::T* a, const typename E::T* b, int64_t n) {
  float out;
  vec_dot_rows<E, kKv, 1>(&a, b, n, &out);
  return out;
}

// Rows interleaved per activation row: accumulators = kRows x 4 kKv = 8 of the 16 registers.
template <int kKv>
inline constexpr int kVecRows = kKv == 1 ? 2 : 1;

template <class E, int kKv>
PARETO_AVX2_TARGET void matmul_vec(const WeightView& w, const PreparedActivations& x,
                                   int64_t row_begin, int64_t row_end, float* y) {
  using T = typename E::T;
  constexpr int kRows = kVecRows<kKv>;
  for (int64_t t = 0; t < x.n_tokens; ++t) {
    const auto* xr = reinterpret_cast<const T*>(x.row(t));
    int64_t r = row_begin;
    for (; r + kRows <= row_end; r += kRows) {
      const T* wr[kRows];
      for (int m = 0; m < kRows; ++m) wr[m] = reinterpret_cast<const T*>(w.row(r + m));
      vec_dot_rows<E, kKv, kRows>(wr, xr, w.cols, y + t * w.rows + r);
    }
    for (; r < row_end; ++r)
      y[t * w.rows + r] = vec_dot<E, kKv>(reinterpret_cast<const T*>(w.row(r)), xr, w.cols);
  }
}

// tinyBLAS outputs for kRows weight rows x kTokens tokens: each output is its own W-lane
// accumulator (lane t sums elements t, t + W, ... with fma) and then the horizontal sum, as in
// llamafile_sgemm; the tile only shares the loads. n is a multiple of W.
template <class E, int kKv, int kRows, int kTokens>
PARETO_AVX2_TARGET void tinyblas_tile(const typename E::T* const* w, const typename E::T* const* x,
                                      int64_t n, float (&out)[kRows][kTokens]) {
  __m256 acc[kRows][kTokens][kKv];
  for (auto& row : acc) {
    for (auto& tok : row) {
      for (auto& v : tok) v = _mm256_setzero_ps();
    }
  }
  for (int64_t l = 0; l < n; l += 8 * kKv) {
    for (int v = 0; v < kKv; ++v) {
      __m256 wv[kRows];
      for (int m = 0; m < kRows; ++m) wv[m] = E::load(w[m] + l + 8 * v);
      for (int t = 0; t < kTokens; ++t) {
        const __m256 xv = E::load(x[t] + l + 8 * v);
        for (int m = 0; m < kRows; ++m) acc[m][t][v] = _mm256_fmadd_ps(wv[m], xv, acc[m][t][v]);
      }
    }
  }
  for (int m = 0; m < kRows; ++m) {
    for (int t = 0; t < kTokens; ++t) out[m][t] = avx2::hsum_reg<kKv>(acc[m][t]);
  }
}

// Rows [r, r + kRows) x tokens [t_begin, t_end), in tiles of kTokens then single tokens.
template <class E, int kKv, int kRows, int kTokens>
PARETO_AVX2_TARGET void tinyblas_rows(const WeightView& w, const PreparedActivations& x, int64_t r,
                                      int64_t t_begin, int64_t t_end, float* y) {
  using T = typename E::T;
  const T* wp[kRows];
  for (int m = 0; m < kRows; ++m) wp[m] = reinterpret_cast<const T*>(w.row(r + m));
  int64_t t = t_begin;
  for (; t + kTokens <= t_end; t += kTokens) {
    const T* xp[kTokens];
    for (int j = 0; j < kTokens; ++j) xp[j] = reinterpret_cast<const T*>(x.row(t + j));
    float out[kRows][kTokens];
    tinyblas_tile<E, kKv, kRows, kTokens>(wp, xp, w.cols, out);
    for (int m = 0; m < kRows; ++m) {
      for (int j = 0; j < kTokens; ++j) y[(t + j) * w.rows + r + m] = out[m][j];
    }
  }
  for (; t < t_end; ++t) {
    const T* xp[1] = {reinterpret_cast<const T*>(x.row(t))};
    float out[kRows][1];
    tinyblas_tile<E, kKv, kRows, 1>(wp, xp, w.cols, out);
    for (int m = 0; m < kRows; ++m) y[t * w.rows + r + m] = out[m][0];
  }
}

// Register tiles (accumulators = rows x tokens x kKv <= 8 of the 16 ymm registers).
template <int kKv>
inline constexpr int kTileRows = kKv == 1 ? 3 : 2;
template <int kKv>
inline constexpr int kTileTokens = kKv == 1 ? 4 : 3;
// Tokens per block: their activation rows stay in L1/L2 while the item's weight rows pass by.
inline constexpr int64_t kTokenBlock = 16;

template <class E, int kKv>
PARETO_AVX2_TARGET void matmul_tinyblas(const WeightView& w, const PreparedActivations& x,
                                        int64_t row_begin, int64_t row_end, float* y) {
  constexpr int kRows = kTileRows<kKv>;
  for (int64_t t0 = 0; t0 < x.n_tokens; t0 += kTokenBlock) {
    const int64_t t1 = std::min(x.n_tokens, t0 + kTokenBlock);
    int64_t r = row_begin;
    for (; r + kRows <= row_end; r += kRows) {
      tinyblas_rows<E, kKv, kRows, kTileTokens<kKv>>(w, x, r, t0, t1, y);
    }
    for (; r < row_end; ++r) tinyblas_rows<E, kKv, 1, kTileTokens<kKv>>(w, x, r, t0, t1, y);
  }
}

// ggml_compute_forward_mul_mat's choice, as kernels_portable.cpp's matmul_float_rows.
template <class E, int kKv>
PARETO_AVX2_TARGET void matmul_float(const WeightView& w, const PreparedActivations& x,
                                     int64_t row_begin, int64_t row_end, float* y) {
  if (x.n_tokens >= 2 && w.cols % (8 * kKv) == 0 && w.rows % 4 == 0) {
    matmul_tinyblas<E, kKv>(w, x, row_begin, row_end, y);
  } else {
    matmul_vec<E, kKv>(w, x, row_begin, row_end, y);
  }
}

template <int kKv>
const KernelSet& lanes_set() {
  return kKv == 1 ? portable_lanes_kernel_set() : portable_avx512_lanes_kernel_set();
}

// softmax numerators of one (token, head): exp(score - max) for visible entries, 0 for the
// others and the padding, in chunks of W; returns the sum (each chunk's lane sum added to a
// double).
template <int kKv>
PARETO_AVX2_TARGET double softmax_numerators(float* probs, int64_t n_padded, const KvHeadView& kv,
                                             int32_t q_pos, float max) {
  constexpr int kW = 8 * kKv;
  const __m256 vmax = _mm256_set1_ps(max);
  const __m256i vq = _mm256_set1_epi32(q_pos);
  const __m256i vlen = _mm256_set1_epi32(kv.length);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  double sum = 0.0;
  for (int64_t c = 0; c < n_padded; c += kW) {
    alignas(32) float e[kW];
    for (int v = 0; v < kKv; ++v) {
      const int64_t base = c + 8 * v;
      const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(base)), iota);
      const __m256i stored = _mm256_cmpgt_epi32(vlen, idx);
      // Masked lanes are not read, so the load may reach past the stored entries.
      const __m256i pos =
          _mm256_maskload_epi32(kv.positions + std::min<int64_t>(base, kv.length), stored);
      const __m256i visible = _mm256_andnot_si256(_mm256_cmpgt_epi32(pos, vq), stored);
      const __m256 ex = avx2::vexp<kKv>(_mm256_sub_ps(_mm256_loadu_ps(probs + base), vmax));
      const __m256 ev = _mm256_and_ps(ex, _mm256_castsi256_ps(visible));
      _mm256_storeu_ps(probs + base, ev);
      _mm256_store_ps(e + 8 * v, ev);
    }
    sum += static_cast<double>(avx2::hsum<kKv>(e));
  }
  return sum;
}

// x rounded to F16 (nearest even) and back, n a multiple of 8.
PARETO_AVX2_TARGET inline void round_f16(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
  }
}

// One score K[j] . q as kernels_portable.cpp's attention_score<P>.
template <int kKv>
PARETO_AVX2_TARGET float attention_score(const AttentionArgs& a, bool single_query, const float* k,
                                         const float* q) {
  if (!a.keys_f16) return vec_dot<F32Elem, kKv>(k, q, a.head_dim);
  if (!single_query && a.head_dim % (8 * kKv) == 0) {
    float out[1][1];
    tinyblas_tile<F32Elem, kKv, 1, 1>(&k, &q, a.head_dim, out);
    return out[0][0];
  }
  return vec_dot<F16ValuedF32Elem, kKv>(k, q, a.head_dim);
}

// Attention as kernels_portable.cpp's attention_items<P> (see the order of operations there), with
// the weighted value sum computed for 8 dims at once: acc [slots, head_dim] holds, per dim, the
// lanes of the accumulators (slot = entry % slots), reduced per 8 dims at the end.
template <int kKv>
PARETO_AVX2_TARGET void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.head_dim % 8 != 0) {
    lanes_set<kKv>().attention(a, begin, end);
    return;
  }
  constexpr int kW = 8 * kKv;
  const int hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  const bool single_query = a.n_tokens == 1;
  // Single query: ggml_vec_dot_f32 over the padded entries (4 accumulators of W lanes);
  // batch: tinyBLAS (one accumulator of W lanes) over the stored entries.
  const int slots = single_query ? 4 * kW : kW;
  // Per worker thread, reused: the dispatcher calls once per (KV head, token).
  thread_local std::vector<float> probs;
  thread_local std::vector<float> acc;
  thread_local std::vector<float> q_f16;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = item / a.n_heads;
    const int h = static_cast<int>(item % a.n_heads);
    const KvHeadView& kv = a.kv[static_cast<size_t>(h / group)];
    const float* q = a.q + item * hd;
    if (a.keys_f16) {
      q_f16.resize(static_cast<size_t>(hd));
      round_f16(q, hd, q_f16.data());
      q = q_f16.data();
    }
    float* out = a.out + item * hd;
    const int32_t q_pos = a.q_positions[t];
    const int64_t n_padded = (kv.length + 4 * kW - 1) / (4 * kW) * (4 * kW);
    probs.assign(static_cast<size_t>(n_padded), 0.0f);
    // Entries after the last visible one are skipped, bit-exactly for finite values: see
    // kernels_float_avx512_attention.cpp's attention_items.
    const int visible = visible_end(kv, q_pos);
    const int64_t n_soft = std::min<int64_t>(n_padded, (visible + kW - 1) / kW * kW);
    float max = -INFINITY;
    for (int j = 0; j < visible; ++j) {
      if (kv.positions[j] > q_pos) continue;
      const float s =
          attention_score<kKv>(a, single_query, kv.keys + static_cast<int64_t>(j) * hd, q);
      probs[static_cast<size_t>(j)] = s * a.scale;
      max = std::max(max, probs[static_cast<size_t>(j)]);
    }
    const double sum = softmax_numerators<kKv>(probs.data(), n_soft, kv, q_pos, max);
    const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv_sum);
    for (int64_t j = 0; j < n_soft; j += 8) {
      _mm256_storeu_ps(probs.data() + j, _mm256_mul_ps(_mm256_loadu_ps(probs.data() + j), vinv));
    }
    store_attention_weights(a, t, h, probs.data(), kv.length);
    if (a.values_f16) round_f16(probs.data(), n_soft, probs.data());

    acc.assign(static_cast<size_t>(slots) * static_cast<size_t>(hd), 0.0f);
    const int64_t n_entries = single_query ? n_padded : visible;
    for (int64_t j = 0; j < n_entries; ++j) {
      const __m256 p = _mm256_set1_ps(probs[static_cast<size_t>(j)]);
      float* ar = acc.data() + (j % slots) * hd;
      if (j < kv.length) {
        const float* vr = kv.values + j * hd;
        for (int d = 0; d < hd; d += 8) {
          _mm256_storeu_ps(ar + d,
                           _mm256_fmadd_ps(_mm256_loadu_ps(vr + d), p, _mm256_loadu_ps(ar + d)));
        }
      } else {  // padding: value 0 (fma(0, 0, acc) as llama.cpp's padded view computes it)
        for (int d = 0; d < hd; d += 8) {
          _mm256_storeu_ps(ar + d,
                           _mm256_fmadd_ps(_mm256_setzero_ps(), p, _mm256_loadu_ps(ar + d)));
        }
      }
    }
    for (int d = 0; d < hd; d += 8) {
      __m256 lanes[4 * kW];
      for (int s = 0; s < slots; ++s) lanes[s] = _mm256_loadu_ps(acc.data() + s * hd + d);
      const __m256 o = single_query ? avx2::reduce4<kKv>(lanes) : avx2::hsum<kKv>(lanes);
      _mm256_storeu_ps(out + d, o);
    }
  }
}

// Online-softmax attention (attention_online.h): keys scored as ggml_vec_dot_f32 does, the
// build's vector exp, the accumulator updated 8 dims at a time (entries in order for each dim:
// the same operations per element as the lane loops).
template <int kKv>
PARETO_AVX2_TARGET void online_score_keys(const float* keys, int n_keys, const float* q, int hd,
                                          float* scores) {
  constexpr int kRows = kVecRows<kKv>;
  int m = 0;
  for (; m + kRows <= n_keys; m += kRows) {
    const float* k[kRows];
    for (int r = 0; r < kRows; ++r) k[r] = keys + static_cast<int64_t>(m + r) * hd;
    vec_dot_rows<F32Elem, kKv, kRows>(k, q, hd, scores + m);
  }
  for (; m < n_keys; ++m)
    scores[m] = vec_dot<F32Elem, kKv>(keys + static_cast<int64_t>(m) * hd, q, hd);
}

// All-ones lanes where bits 0..7 of `bits` are set.
PARETO_AVX2_TARGET inline __m256 lane_mask8(uint32_t bits) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i v = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits & 0xff)), lane_bits);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, lane_bits));
}

template <int kKv>
PARETO_AVX2_TARGET float online_softmax_block(const float* scores, uint32_t visible, float scale,
                                              float* max, float* rescale, float* p) {
  static_assert(kOnlineBlock == 16);
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 x0 = _mm256_mul_ps(_mm256_loadu_ps(scores), vscale);
  const __m256 x1 = _mm256_mul_ps(_mm256_loadu_ps(scores + 8), vscale);
  const __m256 m0 = lane_mask8(visible);
  const __m256 m1 = lane_mask8(visible >> 8);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  const __m256 mx = _mm256_max_ps(_mm256_blendv_ps(ninf, x0, m0), _mm256_blendv_ps(ninf, x1, m1));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  raise_max(_mm_cvtss_f32(h), max, rescale);
  const __m256 vm = _mm256_set1_ps(*max);
  const __m256 p0 = _mm256_and_ps(avx2::vexp<kKv>(_mm256_sub_ps(x0, vm)), m0);
  const __m256 p1 = _mm256_and_ps(avx2::vexp<kKv>(_mm256_sub_ps(x1, vm)), m1);
  _mm256_storeu_ps(p, p0);
  _mm256_storeu_ps(p + 8, p1);
  if constexpr (kKv == 1) {
    return avx2::hsum8_reg(_mm256_add_ps(p0, p1));
  } else {
    const __m256 v[2] = {p0, p1};
    return avx2::hsum_reg<2>(v);
  }
}

template <int kVecs>
PARETO_AVX2_TARGET void online_accumulate_dims(float* acc, float rescale, const float* values,
                                               const float* p, int n, int hd, int d) {
  __m256 a[kVecs];
  for (int v = 0; v < kVecs; ++v) a[v] = _mm256_loadu_ps(acc + d + 8 * v);
  if (rescale != 1.0f) {
    const __m256 r = _mm256_set1_ps(rescale);
    for (int v = 0; v < kVecs; ++v) a[v] = _mm256_mul_ps(a[v], r);
  }
  for (int m = 0; m < n; ++m) {
    const __m256 w = _mm256_set1_ps(p[m]);
    const float* vr = values + static_cast<int64_t>(m) * hd + d;
    for (int v = 0; v < kVecs; ++v) a[v] = _mm256_fmadd_ps(_mm256_loadu_ps(vr + 8 * v), w, a[v]);
  }
  for (int v = 0; v < kVecs; ++v) _mm256_storeu_ps(acc + d + 8 * v, a[v]);
}

PARETO_AVX2_TARGET void online_accumulate_one(float* acc, float rescale, const float* values,
                                              const float* p, int n, int hd) {
  int d = 0;
  for (; d + 32 <= hd; d += 32) online_accumulate_dims<4>(acc, rescale, values, p, n, hd, d);
  for (; d + 8 <= hd; d += 8) online_accumulate_dims<1>(acc, rescale, values, p, n, hd, d);
  for (; d < hd; ++d) {
    float x = rescale != 1.0f ? acc[d] * rescale : acc[d];
    for (int m = 0; m < n; ++m) x = std::fma(values[static_cast<int64_t>(m) * hd + d], p[m], x);
    acc[d] = x;
  }
}

PARETO_AVX2_TARGET void online_accumulate(float* const* accs, const float* rescale,
                                          const float* values, const float* const* ps,
                                          int n_queries, int n, int hd) {
  for (int k = 0; k < n_queries; ++k)
    online_accumulate_one(accs[k], rescale[k], values, ps[k], n, hd);
}

template <int kKv>
void attention_online_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  static constexpr OnlineAttentionOps kOps{online_score_keys<kKv>, online_softmax_block<kKv>,
                                           online_accumulate};
  online_attention_items(a, begin, end, kOps);
}

template <int kKv>
KernelSet with_float_simd(const KernelSet& lanes) {
  KernelSet set = lanes;
  set.matmul_f32 = matmul_float<F32Elem, kKv>;
  set.matmul_f16 = matmul_float<F16Elem, kKv>;
  set.matmul_bf16 = matmul_float<BF16Elem, kKv>;
  set.attention = attention_items<kKv>;
  set.attention_online = attention_online_items<kKv>;
  return set;
}

}  // namespace

bool float_simd_supported() {
  return avx2::avx2_fma_f16c_supported();
}

const KernelSet& portable_kernel_set() {
  static const KernelSet kSet = float_simd_supported()
                                    ? with_float_simd<1>(portable_lanes_kernel_set())
                                    : portable_lanes_kernel_set();
  return kSet;
}

const KernelSet& portable_avx512_avx2_kernel_set() {
  static const KernelSet kSet = float_simd_supported()
                                    ? with_float_simd<2>(portable_avx512_lanes_kernel_set())
                                    : portable_avx512_lanes_kernel_set();
  return kSet;
}

const KernelSet& portable_avx512_kernel_set() {
  return float_avx512_supported() ? portable_avx512_native_kernel_set()
                                  : portable_avx512_avx2_kernel_set();
}

#else  // no x86-64: NEON on AArch64 (kernels_float_neon.cpp), the lane loops elsewhere.

bool float_simd_supported() {
  return false;
}
const KernelSet& portable_kernel_set() {
  return portable_neon_kernel_set();
}
const KernelSet& portable_avx512_avx2_kernel_set() {
  return portable_avx512_lanes_kernel_set();
}
const KernelSet& portable_avx512_kernel_set() {
  return portable_avx512_neon_kernel_set();
}

#endif

}  // namespace pareto::kernels
