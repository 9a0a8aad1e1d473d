// The attention forms of llama.cpp's AVX-512 order (16 lanes) in native AVX-512 F/BW/VL: the
// entries of portable_avx512_native_kernel_set() (kernels_float_avx512.cpp), chosen at run time.
// Per output the operations and their order are those of kernels_portable.cpp's lane loops
// (attention_items<Width16>, attention_online.h), so results are identical bit for bit
// (tests/kernels/float_avx512_test.cpp); what changes: scores of 16 keys at a time, and the
// weighted value sum per slot over all head dims in registers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

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

using avx512::F16ValuedF32Elem;
using avx512::F32Elem;
using avx512::vec_dot_rows;

// Keys scored together by vec_dot_rows (4 accumulators each: 16 of the 32 zmm registers).
constexpr int kVecRows = 4;

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

// Scores of n <= 16 consecutive keys in tinyBLAS order (F16 x F16 for a batch over an F16 cache,
// q rounded to F16): one 16-lane accumulator per key over hd (a multiple of 16), then hsum16.
void tinyblas_scores(const float* keys, int n, const float* q, int hd, float* s) {
  __m512 v[16];
  for (int m = 0; m < 16; ++m) {
    v[m] = _mm512_setzero_ps();
    const float* k = keys + static_cast<int64_t>(m) * hd;
    for (int i = 0; m < n && i < hd; i += 16) {
      v[m] = _mm512_fmadd_ps(_mm512_loadu_ps(k + i), _mm512_loadu_ps(q + i), v[m]);
    }
  }
  alignas(64) float r[16];
  _mm512_store_ps(r, avx512::hsum16_x16(v));
  std::copy_n(r, n, s);
}

// ggml_vec_dot_f32 (E = F32Elem) or ggml_vec_dot_f16 (F16ValuedF32Elem) scores of n consecutive
// keys, kVecRows at a time.
// When hd leaves a tail (hd % 64 != 0, e.g. 48: all of it), 16 keys at a time take the tails
// one key per lane (f32_tails_x16 / f16_valued_tails_x16: the same operations in the same order
// per key) instead of one chain of dependent additions per key.
template <class E>
void vec_dot_scores(const float* keys, int n, const float* q, int hd, float* s) {
  int m = 0;
  const int np = hd & ~63;
  if (np != hd) {
    for (; m + 16 <= n; m += 16) {
      const float* base = keys + static_cast<int64_t>(m) * hd;
      alignas(64) float sums[16] = {};  // reduce4 of zero accumulators is +0.0f too
      if (np > 0) {
        for (int g = 0; g < 16; g += kVecRows) {
          const float* kp[kVecRows];
          for (int r = 0; r < kVecRows; ++r) kp[r] = base + static_cast<int64_t>(g + r) * hd;
          vec_dot_rows<E, kVecRows, false>(kp, q, hd, sums + g);
        }
      }
      if constexpr (std::is_same_v<E, F32Elem>) {
        avx512::f32_tails_x16(base, hd, q, np, hd, sums);
      } else {
        avx512::f16_valued_tails_x16(base, hd, q, np, hd, sums);
      }
      std::copy_n(sums, 16, s + m);
    }
  }
  for (; m + kVecRows <= n; m += kVecRows) {
    const float* kp[kVecRows];
    for (int r = 0; r < kVecRows; ++r) kp[r] = keys + static_cast<int64_t>(m + r) * hd;
    vec_dot_rows<E, kVecRows>(kp, q, hd, s + m);
  }
  for (; m < n; ++m) {
    const float* kp[1] = {keys + static_cast<int64_t>(m) * hd};
    vec_dot_rows<E, 1>(kp, q, hd, s + m);
  }
}

// x rounded to F16 (nearest even) and back; n a multiple of 16.
void round_f16(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm512_storeu_ps(y + i, _mm512_cvtph_ps(h));
  }
}

// Keeps the scores s[0, n) of keys [j0, j0 + n) that the query at q_pos sees: scaled into
// probs[j0 + m], the running max raised (an invisible key's score is dropped).
inline void keep_visible_scores(const KvHeadView& kv, int j0, int n, const float* s, int32_t q_pos,
                                float scale, float* probs, float& max) {
  for (int m = 0; m < n; ++m) {
    if (kv.positions[j0 + m] > q_pos) continue;
    probs[j0 + m] = s[m] * scale;
    max = std::max(max, probs[j0 + m]);
  }
}

// Turns the scores in probs[0, n_soft) into the softmax row (past n_soft every numerator is 0:
// adding +0.0 to the sum changes nothing).
inline void normalize_scores(float* probs, int64_t n_soft, const KvHeadView& kv, int32_t q_pos,
                             float max) {
  const double sum = softmax_numerators(probs, n_soft, kv, q_pos, max);
  const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
  const __m512 vinv = _mm512_set1_ps(inv_sum);
  for (int64_t j = 0; j < n_soft; j += 16) {
    _mm512_storeu_ps(probs + j, _mm512_mul_ps(_mm512_loadu_ps(probs + j), vinv));
  }
}

// out [hd] = the slots' sums acc [slots, hd] added across: reduce4_across for a single query
// (ggml_vec_dot_f32's 64 lanes), reduce_add16_across for a batch (tinyBLAS's 16).
inline void reduce_slots(const float* acc, int slots, int hd, bool single_query, float* out) {
  for (int d = 0; d < hd; d += 16) {
    __m512 lanes[64];
    for (int sl = 0; sl < slots; ++sl) lanes[sl] = _mm512_loadu_ps(acc + sl * hd + d);
    const __m512 o =
        single_query ? avx512::reduce4_across(lanes) : avx512::reduce_add16_across(lanes);
    _mm512_storeu_ps(out + d, o);
  }
}

// Attention as kernels_portable.cpp's attention_items<Width16> (the order of operations is
// described there), one item after another. head_dim: a multiple of 16, at most 256.
void attention_items_each(const AttentionArgs& a, int64_t begin, int64_t end) {
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
  alignas(64) float q_f16[16 * kMaxDimVectors];                      // keys_f16: q rounded
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = item / a.n_heads;
    const int h = static_cast<int>(item % a.n_heads);
    const KvHeadView& kv = a.kv[static_cast<size_t>(h / group)];
    const float* q = a.q + item * hd;
    if (a.keys_f16) {
      round_f16(q, hd, q_f16);
      q = q_f16;
    }
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
    // Scores (attention_score in kernels_portable.cpp) of 16 keys at a time in tinyBLAS order or
    // when head_dim is a multiple of 64 (vec_dot without a tail), else 4 keys at a time (an
    // invisible key's score is computed and dropped).
    float max = -INFINITY;
    int j0 = 0;
    if (a.keys_f16 && !single_query) {
      for (; j0 < visible; j0 += 16) {
        float s[16];
        const int n = std::min(16, visible - j0);
        tinyblas_scores(kv.keys + static_cast<int64_t>(j0) * hd, n, q, hd, s);
        keep_visible_scores(kv, j0, n, s, q_pos, a.scale, probs.data(), max);
      }
    } else if (hd % 64 == 0) {
      const __m512 q0 = _mm512_loadu_ps(q);
      for (; j0 + 16 <= visible; j0 += 16) {
        alignas(64) float s[16];
        _mm512_store_ps(s, scores16(kv.keys + static_cast<int64_t>(j0) * hd, q, q0, hd));
        keep_visible_scores(kv, j0, 16, s, q_pos, a.scale, probs.data(), max);
      }
    }
    for (int j = j0; j < visible; j += 16) {
      const int nk = std::min(16, visible - j);
      float s[16];
      const float* keys = kv.keys + static_cast<int64_t>(j) * hd;
      if (a.keys_f16) {
        vec_dot_scores<F16ValuedF32Elem>(keys, nk, q, hd, s);
      } else {
        vec_dot_scores<F32Elem>(keys, nk, q, hd, s);
      }
      keep_visible_scores(kv, j, nk, s, q_pos, a.scale, probs.data(), max);
    }
    normalize_scores(probs.data(), n_soft, kv, q_pos, max);
    store_attention_weights(a, t, h, probs.data(), kv.length);
    if (a.values_f16) round_f16(probs.data(), n_soft, probs.data());
    sums(kv.values, probs.data(), kv.length, single_query ? n_padded : visible, slots, hd,
         acc.data());
    reduce_slots(acc.data(), slots, hd, single_query, out);
  }
}

// slot_sums of kHeads heads over the same values at once: each value row is loaded once for all
// of them, and every head's fma chains are slot_sums' (the same operands in the same order per
// slot and dim), so the sums keep their bits.
template <int kDimVectors, int kHeads>
void slot_sums_heads(const float* values, const float* const* probs, int64_t length,
                     int64_t n_entries, int slots, int hd, float* const* acc) {
  for (int s = 0; s < slots; ++s) {
    __m512 a[kHeads][kDimVectors];
    for (auto& head : a) {
      for (auto& v : head) v = _mm512_setzero_ps();
    }
    for (int64_t j = s; j < n_entries; j += slots) {
      __m512 v[kDimVectors];
      if (j < length) {
        const float* vr = values + j * hd;
        for (int d = 0; d < kDimVectors; ++d) v[d] = _mm512_loadu_ps(vr + 16 * d);
      } else {  // padding: fma(0, p, acc), as llama.cpp's padded view computes it
        for (auto& x : v) x = _mm512_setzero_ps();
      }
      for (int h = 0; h < kHeads; ++h) {
        const __m512 p = _mm512_set1_ps(probs[h][j]);
        for (int d = 0; d < kDimVectors; ++d) a[h][d] = _mm512_fmadd_ps(v[d], p, a[h][d]);
      }
    }
    for (int h = 0; h < kHeads; ++h) {
      for (int d = 0; d < kDimVectors; ++d) _mm512_storeu_ps(acc[h] + s * hd + 16 * d, a[h][d]);
    }
  }
}

using SlotSumsHeadsFn = void (*)(const float*, const float* const*, int64_t, int64_t, int, int,
                                 float* const*);

// Heads summed together for a head size (accumulators in at most 16 of the 32 zmm registers);
// 0: the head size takes one head at a time.
constexpr int heads_per_sum(int dim_vectors) {
  return dim_vectors <= 4 ? 4 : dim_vectors <= 8 ? 2 : 0;
}

template <int kDimVectors>
SlotSumsHeadsFn slot_sums_heads_for(int heads) {
  if constexpr (heads_per_sum(kDimVectors) == 0) {
    return nullptr;
  } else {
    switch (heads) {
      case 1:
        return slot_sums_heads<kDimVectors, 1>;
      case 2:
        return slot_sums_heads<kDimVectors, 2>;
      case 3:
        if constexpr (heads_per_sum(kDimVectors) >= 3) return slot_sums_heads<kDimVectors, 3>;
        return nullptr;
      case 4:
        if constexpr (heads_per_sum(kDimVectors) >= 4) return slot_sums_heads<kDimVectors, 4>;
        return nullptr;
      default:
        return nullptr;
    }
  }
}

template <int... kDv>
SlotSumsHeadsFn slot_sums_heads_for(int dim_vectors, int heads,
                                    std::integer_sequence<int, kDv...>) {
  SlotSumsHeadsFn fn = nullptr;
  ((fn = dim_vectors == kDv + 1 ? slot_sums_heads_for<kDv + 1>(heads) : fn), ...);
  return fn;
}

// One query token, query heads [begin, end) of one KV head (GQA): attention_items_each's
// operations for each head, in each head's order, but the keys scored block by block for all the
// heads (a block of keys stays in L1 meanwhile) and the values summed for up to 4 heads per load.
// Over a long cache each head used to read the whole decoded keys and values again.
void attention_heads_one_token(const AttentionArgs& a, int64_t begin, int64_t end) {
  const int hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  const int n = static_cast<int>(end - begin);
  const KvHeadView& kv = a.kv[static_cast<size_t>(begin % a.n_heads / group)];
  const int32_t q_pos = a.q_positions[0];
  const int64_t n_padded = (kv.length + 63) / 64 * 64;
  const int visible = visible_end(kv, q_pos);
  const int64_t n_soft = std::min<int64_t>(n_padded, (visible + 15) / 16 * 16);
  constexpr int kSlots = 64;  // single query: ggml_vec_dot_f32's 4 x 16 lanes
  thread_local std::vector<float> probs;
  thread_local std::vector<float> acc;
  thread_local std::vector<float> queries;  // keys_f16: the queries rounded to F16
  probs.assign(static_cast<size_t>(n) * static_cast<size_t>(n_padded), 0.0f);
  acc.resize(static_cast<size_t>(n) * kSlots * static_cast<size_t>(hd));
  queries.resize(static_cast<size_t>(n) * static_cast<size_t>(hd));
  thread_local std::vector<const float*> q;
  thread_local std::vector<float> max;
  q.assign(static_cast<size_t>(n), nullptr);
  max.assign(static_cast<size_t>(n), -INFINITY);
  for (int h = 0; h < n; ++h) {
    q[static_cast<size_t>(h)] = a.q + (begin + h) * hd;
    if (a.keys_f16) {
      float* r = queries.data() + static_cast<size_t>(h) * static_cast<size_t>(hd);
      round_f16(q[static_cast<size_t>(h)], hd, r);
      q[static_cast<size_t>(h)] = r;
    }
  }
  const auto head_probs = [&](int h) {
    return probs.data() + static_cast<size_t>(h) * static_cast<size_t>(n_padded);
  };
  // Scores: full blocks by scores16 where head_dim is a multiple of 64, the rest by
  // vec_dot_scores, as attention_items_each splits them.
  for (int j0 = 0; j0 < visible; j0 += 16) {
    const int nk = std::min(16, visible - j0);
    const float* keys = kv.keys + static_cast<int64_t>(j0) * hd;
    for (int h = 0; h < n; ++h) {
      alignas(64) float sc[16];
      const float* qh = q[static_cast<size_t>(h)];
      if (hd % 64 == 0 && nk == 16) {
        _mm512_store_ps(sc, scores16(keys, qh, _mm512_loadu_ps(qh), hd));
      } else if (a.keys_f16) {
        vec_dot_scores<F16ValuedF32Elem>(keys, nk, qh, hd, sc);
      } else {
        vec_dot_scores<F32Elem>(keys, nk, qh, hd, sc);
      }
      keep_visible_scores(kv, j0, nk, sc, q_pos, a.scale, head_probs(h),
                          max[static_cast<size_t>(h)]);
    }
  }
  for (int h = 0; h < n; ++h) {
    float* ph = head_probs(h);
    normalize_scores(ph, n_soft, kv, q_pos, max[static_cast<size_t>(h)]);
    store_attention_weights(a, 0, static_cast<int>((begin + h) % a.n_heads), ph, kv.length);
    if (a.values_f16) round_f16(ph, n_soft, ph);
  }
  const int per_sum = heads_per_sum(hd / 16);
  for (int h0 = 0; h0 < n; h0 += per_sum) {
    const int k = std::min(per_sum, n - h0);
    const float* ps[4];
    float* accs[4];
    for (int i = 0; i < k; ++i) {
      ps[i] = head_probs(h0 + i);
      accs[i] = acc.data() + static_cast<size_t>(h0 + i) * kSlots * static_cast<size_t>(hd);
    }
    slot_sums_heads_for(hd / 16, k, std::make_integer_sequence<int, kMaxDimVectors>{})(
        kv.values, ps, kv.length, n_padded, kSlots, hd, accs);
  }
  for (int h = 0; h < n; ++h) {
    reduce_slots(acc.data() + static_cast<size_t>(h) * kSlots * static_cast<size_t>(hd), kSlots, hd,
                 true, a.out + (begin + h) * hd);
  }
}

// attention_items_each, with the query heads of one KV head taken together for a single query
// token (attention_heads_one_token) where the head size allows. head_dim must be a multiple of 16
// and at most 256; others take the AVX2 form.
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.head_dim % 16 != 0 || a.head_dim > 16 * kMaxDimVectors) {
    portable_avx512_avx2_kernel_set().attention(a, begin, end);
    return;
  }
  const int group = a.n_heads / a.n_kv_heads;
  if (a.n_tokens != 1 || group == 1 || heads_per_sum(a.head_dim / 16) == 0) {
    attention_items_each(a, begin, end);
    return;
  }
  // Single query: item = head. Split at the KV heads' boundaries.
  for (int64_t i0 = begin; i0 < end;) {
    const int64_t i1 = std::min<int64_t>(end, (i0 / group + 1) * group);
    if (i1 - i0 > 1) {
      attention_heads_one_token(a, i0, i1);
    } else {
      attention_items_each(a, i0, i1);
    }
    i0 = i1;
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
  vec_dot_scores<F32Elem>(keys, n_keys, q, hd, scores);
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

void avx512_attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  attention_items(a, begin, end);
}

void avx512_attention_online_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  attention_online_items(a, begin, end);
}

#endif

}  // namespace pareto::kernels
