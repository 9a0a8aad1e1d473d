// The F32/F16/BF16 matmuls and attention of the llama.cpp-order kernel sets in AArch64 NEON
// (baseline Advanced SIMD, so no run-time check). Same lane structure as the lane loops of
// kernels_portable.cpp (the mirrored x86 build defines it, not this CPU): kKv = 1 is the AVX2
// order (8 lanes = two float32x4_t quads per accumulator), kKv = 2 the AVX-512 order (16 lanes =
// four quads). Per output the operations and their order are unchanged, so results are identical
// bit for bit (tests/kernels/float_neon_test.cpp); what changes is that one weight load serves a
// tile of rows x tokens (prefill), decode interleaves rows, and attention sums values 4 dims at a
// time. The structure follows kernels_float_simd.cpp (AVX2), with tiles sized for 32 registers.
#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/attention_online.h"
#include "kernels/kernel_set.h"
#include "kernels/simd_neon.h"

namespace pareto::kernels {

#if defined(PARETO_HAVE_NEON_KERNELS)
namespace {
using neon::BF16Elem;
using neon::F16Elem;
using neon::F32Elem;
// F32 values that are F16 values (an F16 cache's keys, a query rounded to F16): loaded as F32,
// summed in ggml_vec_dot_f16's order (vec_dot_rows: the tail in double).
struct F16ValuedF32Elem : F32Elem {};

// ggml_vec_dot_{f32,f16,bf16} of kRows rows with one activation row (interleaved for more
// independent fma chains): 4 accumulators of W = 8 kKv lanes over chunks of 4W; quad k covers
// elements i + 4k .. i + 4k + 3 of each chunk (lanes 4(k % kQ).. of accumulator k / kQ, with kQ =
// 2 kKv quads per accumulator). The tail: F32 in float with separate multiply and add, F16/BF16
// in double.
template <class E, int kKv, int kRows>
void vec_dot_rows(const typename E::T* const* a, const typename E::T* b, int64_t n, float* out) {
  constexpr int kW = 8 * kKv;
  constexpr int kAcc = 8 * kKv;  // quads: 4 accumulators x 2 kKv
  const int64_t np = n & ~int64_t{4 * kW - 1};
  float32x4_t acc[kRows][kAcc];
  for (auto& row : acc) {
    for (auto& v : row) v = vdupq_n_f32(0.0f);
  }
  for (int64_t i = 0; i < np; i += 4 * kW) {
    // Unrolled early, so that GCC keeps acc in registers instead of storing it every iteration.
#pragma GCC unroll 16
    for (int k = 0; k < kAcc; ++k) {
      const float32x4_t bv = E::load(b + i + 4 * k);
#pragma GCC unroll 4
      for (int m = 0; m < kRows; ++m) {
        acc[m][k] = vfmaq_f32(acc[m][k], E::load(a[m] + i + 4 * k), bv);
      }
    }
  }
  for (int m = 0; m < kRows; ++m) {
    const float main_sum = neon::reduce4_q<kKv>(acc[m]);
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
float vec_dot(const typename E::T* a, const typename E::T* b, int64_t n) {
  float out;
  vec_dot_rows<E, kKv, 1>(&a, b, n, &out);
  return out;
}

// Rows interleaved per activation row. One: its 8 kKv accumulators already give enough
// independent fma chains, and with two GCC hoists both rows' loads and spills accumulators.
template <int kKv>
inline constexpr int kVecRows = 1;

template <class E, int kKv>
void matmul_vec(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                int64_t row_end, float* y) {
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
void tinyblas_tile(const typename E::T* const* w, const typename E::T* const* x, int64_t n,
                   float (&out)[kRows][kTokens]) {
  constexpr int kQ = 2 * kKv;
  float32x4_t acc[kRows][kTokens][kQ];
  for (auto& row : acc) {
    for (auto& tok : row) {
      for (auto& v : tok) v = vdupq_n_f32(0.0f);
    }
  }
  for (int64_t l = 0; l < n; l += 4 * kQ) {
    for (int v = 0; v < kQ; ++v) {
      float32x4_t wv[kRows];
      for (int m = 0; m < kRows; ++m) wv[m] = E::load(w[m] + l + 4 * v);
      for (int t = 0; t < kTokens; ++t) {
        const float32x4_t xv = E::load(x[t] + l + 4 * v);
        for (int m = 0; m < kRows; ++m) acc[m][t][v] = vfmaq_f32(acc[m][t][v], wv[m], xv);
      }
    }
  }
  for (int m = 0; m < kRows; ++m) {
    for (int t = 0; t < kTokens; ++t) out[m][t] = neon::hsum_q<kKv>(acc[m][t]);
  }
}

// Rows [r, r + kRows) x tokens [t_begin, t_end), in tiles of kTokens then single tokens.
template <class E, int kKv, int kRows, int kTokens>
void tinyblas_rows(const WeightView& w, const PreparedActivations& x, int64_t r, int64_t t_begin,
                   int64_t t_end, float* y) {
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

// Register tiles: accumulators = rows x tokens x 2 kKv = 18 / 16 of the 32 quad registers. (With
// 24, GCC schedules the loads of a whole iteration first and spills accumulators.)
template <int kKv>
inline constexpr int kTileRows = kKv == 1 ? 3 : 2;
template <int kKv>
inline constexpr int kTileTokens = kKv == 1 ? 3 : 2;
// Tokens per block: their activation rows stay in L1/L2 while the item's weight rows pass by.
inline constexpr int64_t kTokenBlock = 16;

template <class E, int kKv>
void matmul_tinyblas(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                     int64_t row_end, float* y) {
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
void matmul_float(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                  int64_t row_end, float* y) {
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
double softmax_numerators(float* probs, int64_t n_padded, const KvHeadView& kv, int32_t q_pos,
                          float max) {
  constexpr int kQ = 2 * kKv;
  const float32x4_t vmax = vdupq_n_f32(max);
  const int32x4_t vq = vdupq_n_s32(q_pos);
  double sum = 0.0;
  for (int64_t c = 0; c < n_padded; c += 4 * kQ) {
    float32x4_t e[kQ];
    for (int v = 0; v < kQ; ++v) {
      const int64_t base = c + 4 * v;
      uint32x4_t visible;
      if (base + 4 <= kv.length) {
        visible = vcleq_s32(vld1q_s32(kv.positions + base), vq);
      } else {  // past the stored entries: invisible
        int32_t pos[4];
        for (int i = 0; i < 4; ++i) pos[i] = base + i < kv.length ? kv.positions[base + i] : 0;
        uint32_t stored[4];
        for (int i = 0; i < 4; ++i) stored[i] = base + i < kv.length ? UINT32_MAX : 0;
        visible = vandq_u32(vcleq_s32(vld1q_s32(pos), vq), vld1q_u32(stored));
      }
      const float32x4_t ex = neon::vexp<kKv>(vsubq_f32(vld1q_f32(probs + base), vmax));
      e[v] = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(ex), visible));
      vst1q_f32(probs + base, e[v]);
    }
    sum += static_cast<double>(neon::hsum_q<kKv>(e));
  }
  return sum;
}

// x rounded to F16 (nearest even, FPCR's default mode) and back, n a multiple of 4.
inline void round_f16(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
}

// One score K[j] . q as kernels_portable.cpp's attention_score<P>.
template <int kKv>
float attention_score(const AttentionArgs& a, bool single_query, const float* k, const float* q) {
  if (!a.keys_f16) return vec_dot<F32Elem, kKv>(k, q, a.head_dim);
  if (!single_query && a.head_dim % (8 * kKv) == 0) {
    float out[1][1];
    tinyblas_tile<F32Elem, kKv, 1, 1>(&k, &q, a.head_dim, out);
    return out[0][0];
  }
  return vec_dot<F16ValuedF32Elem, kKv>(k, q, a.head_dim);
}

// Attention as kernels_portable.cpp's attention_items<P> (see the order of operations there), with
// the weighted value sum computed for 4 dims at once: acc [slots, head_dim] holds, per dim, the
// lanes of the accumulators (slot = entry % slots), reduced per 4 dims at the end.
template <int kKv>
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.head_dim % 4 != 0) {
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
    const float32x4_t vinv = vdupq_n_f32(inv_sum);
    for (int64_t j = 0; j < n_soft; j += 4) {
      vst1q_f32(probs.data() + j, vmulq_f32(vld1q_f32(probs.data() + j), vinv));
    }
    store_attention_weights(a, t, h, probs.data(), kv.length);
    if (a.values_f16) round_f16(probs.data(), n_soft, probs.data());

    acc.assign(static_cast<size_t>(slots) * static_cast<size_t>(hd), 0.0f);
    const int64_t n_entries = single_query ? n_padded : visible;
    for (int64_t j = 0; j < n_entries; ++j) {
      const float32x4_t p = vdupq_n_f32(probs[static_cast<size_t>(j)]);
      float* ar = acc.data() + (j % slots) * hd;
      if (j < kv.length) {
        const float* vr = kv.values + j * hd;
        for (int d = 0; d < hd; d += 4) {
          vst1q_f32(ar + d, vfmaq_f32(vld1q_f32(ar + d), vld1q_f32(vr + d), p));
        }
      } else {  // padding: value 0 (fma(0, 0, acc) as llama.cpp's padded view computes it)
        for (int d = 0; d < hd; d += 4) {
          vst1q_f32(ar + d, vfmaq_f32(vld1q_f32(ar + d), vdupq_n_f32(0.0f), p));
        }
      }
    }
    for (int d = 0; d < hd; d += 4) {
      float32x4_t lanes[4 * kW];
      for (int s = 0; s < slots; ++s) lanes[s] = vld1q_f32(acc.data() + s * hd + d);
      const float32x4_t o = single_query ? neon::reduce4<kKv>(lanes) : neon::hsum<kKv>(lanes);
      vst1q_f32(out + d, o);
    }
  }
}

// Online-softmax attention (attention_online.h): keys scored as ggml_vec_dot_f32 does, the
// build's vector exp, the accumulator updated 4 dims at a time (entries in order for each dim:
// the same operations per element as the lane loops).
template <int kKv>
void online_score_keys(const float* keys, int n_keys, const float* q, int hd, float* scores) {
  for (int m = 0; m < n_keys; ++m) {
    scores[m] = vec_dot<F32Elem, kKv>(keys + static_cast<int64_t>(m) * hd, q, hd);
  }
}

template <int kKv>
float online_softmax_block(const float* scores, uint32_t visible, float scale, float* max,
                           float* rescale, float* p) {
  static_assert(kOnlineBlock == 16);
  const uint32x4_t bits = {1, 2, 4, 8};
  const float32x4_t ninf = vdupq_n_f32(-INFINITY);
  float32x4_t x[4];
  uint32x4_t vis[4];
  float32x4_t mx = ninf;
  for (int i = 0; i < 4; ++i) {
    x[i] = vmulq_n_f32(vld1q_f32(scores + 4 * i), scale);
    vis[i] = vtstq_u32(vdupq_n_u32(visible >> (4 * i)), bits);
    mx = vmaxq_f32(mx, vbslq_f32(vis[i], x[i], ninf));
  }
  raise_max(vmaxvq_f32(mx), max, rescale);
  float32x4_t pq[4];
  for (int i = 0; i < 4; ++i) {
    const float32x4_t e = neon::vexp<kKv>(vsubq_f32(x[i], vdupq_n_f32(*max)));
    pq[i] = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), vis[i]));
    vst1q_f32(p + 4 * i, pq[i]);
  }
  if constexpr (kKv == 1) {
    return neon::hsum8_q(vaddq_f32(pq[0], pq[2]), vaddq_f32(pq[1], pq[3]));
  } else {
    return neon::hsum_q<2>(pq);
  }
}

template <int kVecs>
void online_accumulate_dims(float* acc, float rescale, const float* values, const float* p, int n,
                            int hd, int d) {
  float32x4_t a[kVecs];
  for (int v = 0; v < kVecs; ++v) a[v] = vld1q_f32(acc + d + 4 * v);
  if (rescale != 1.0f) {
    for (int v = 0; v < kVecs; ++v) a[v] = vmulq_n_f32(a[v], rescale);
  }
  for (int m = 0; m < n; ++m) {
    const float32x4_t w = vdupq_n_f32(p[m]);
    const float* vr = values + static_cast<int64_t>(m) * hd + d;
    for (int v = 0; v < kVecs; ++v) a[v] = vfmaq_f32(a[v], vld1q_f32(vr + 4 * v), w);
  }
  for (int v = 0; v < kVecs; ++v) vst1q_f32(acc + d + 4 * v, a[v]);
}

void online_accumulate_one(float* acc, float rescale, const float* values, const float* p, int n,
                           int hd) {
  int d = 0;
  for (; d + 32 <= hd; d += 32) online_accumulate_dims<8>(acc, rescale, values, p, n, hd, d);
  for (; d + 4 <= hd; d += 4) online_accumulate_dims<1>(acc, rescale, values, p, n, hd, d);
  for (; d < hd; ++d) {
    float x = rescale != 1.0f ? acc[d] * rescale : acc[d];
    for (int m = 0; m < n; ++m) x = std::fma(values[static_cast<int64_t>(m) * hd + d], p[m], x);
    acc[d] = x;
  }
}

void online_accumulate(float* const* accs, const float* rescale, const float* values,
                       const float* const* ps, int n_queries, int n, int hd) {
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
KernelSet with_float_neon(const KernelSet& lanes) {
  KernelSet set = lanes;
  set.matmul_f32 = matmul_float<F32Elem, kKv>;
  set.matmul_f16 = matmul_float<F16Elem, kKv>;
  set.matmul_bf16 = matmul_float<BF16Elem, kKv>;
  set.attention = attention_items<kKv>;
  set.attention_online = attention_online_items<kKv>;
  return set;
}

}  // namespace

bool float_neon_supported() {
  return true;
}

const KernelSet& portable_neon_kernel_set() {
  static const KernelSet kSet = with_float_neon<1>(portable_lanes_kernel_set());
  return kSet;
}

const KernelSet& portable_avx512_neon_kernel_set() {
  static const KernelSet kSet = with_float_neon<2>(portable_avx512_lanes_kernel_set());
  return kSet;
}

#else  // not AArch64: the lane loops.

bool float_neon_supported() {
  return false;
}
const KernelSet& portable_neon_kernel_set() {
  return portable_lanes_kernel_set();
}
const KernelSet& portable_avx512_neon_kernel_set() {
  return portable_avx512_lanes_kernel_set();
}

#endif

}  // namespace pareto::kernels
