// The scalar reference kernels: one accumulator, elements in order, conversions through
// base/half.h. Slow and obviously right; the other paths are compared against these.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "base/half.h"
#include "kernels/attention_online.h"
#include "kernels/kernel_set.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

template <float (*kToF32)(uint16_t)>
float dot_half(const uint8_t* a, const uint8_t* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += kToF32(load_u16(a + 2 * i)) * kToF32(load_u16(b + 2 * i));
  return sum;
}

// F16 weights x F32 activations (KernelSet::matmul_f16_f32act).
float dot_f16_f32(const uint8_t* a, const uint8_t* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, b + 4 * i, sizeof(v));
    sum += f16_to_f32(load_u16(a + 2 * i)) * v;
  }
  return sum;
}

float dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t n) {
  const auto* wb = reinterpret_cast<const BlockQ8_0*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int32_t sumi = 0;
    for (int64_t j = 0; j < kQuantBlock; ++j) sumi += wb[b].qs[j] * xb[b].qs[j];
    sum += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
  }
  return sum;
}

float dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t n) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQuantBlock; ++b) {
    int32_t sumi = 0;
    for (int64_t j = 0; j < kQuantBlock / 2; ++j) {
      sumi += ((wb[b].qs[j] & 0x0f) - 8) * xb[b].qs[j];
      sumi += ((wb[b].qs[j] >> 4) - 8) * xb[b].qs[j + kQuantBlock / 2];
    }
    sum += static_cast<float>(sumi) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
  }
  return sum;
}

template <float (*kDot)(const uint8_t*, const uint8_t*, int64_t)>
void matmul_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                 int64_t row_end, float* y) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < x.n_tokens; ++t) y[t * w.rows + r] = kDot(w.row(r), x.row(t), w.cols);
  }
}

float dot_f32_bytes(const uint8_t* a, const uint8_t* b, int64_t n) {
  return dot_f32(reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(b), n);
}

float round_f16(float x) {
  return f16_to_f32(f32_to_f16(x));
}

// Two passes per (token, head), in llama.cpp's order: scores, max, exp with a double sum,
// normalize, then the probability-weighted sum of values. keys_f16 / values_f16: the query and
// the normalized softmax row rounded to F16, as llama.cpp over an F16 cache (the sums in order).
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  const int group = a.n_heads / a.n_kv_heads;
  // Per worker thread, reused: the dispatcher calls once per (KV head, token).
  thread_local std::vector<float> probs;
  thread_local std::vector<float> q_f16;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = item / a.n_heads;
    const int h = static_cast<int>(item % a.n_heads);
    const KvHeadView& kv = a.kv[static_cast<size_t>(h / group)];
    const float* q = a.q + item * a.head_dim;
    if (a.keys_f16) {
      q_f16.resize(static_cast<size_t>(a.head_dim));
      for (int d = 0; d < a.head_dim; ++d) q_f16[static_cast<size_t>(d)] = round_f16(q[d]);
      q = q_f16.data();
    }
    float* out = a.out + item * a.head_dim;
    const int32_t q_pos = a.q_positions[t];
    probs.assign(static_cast<size_t>(kv.length), 0.0f);
    float max = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < kv.length; ++j) {
      if (kv.positions[j] > q_pos) continue;
      probs[j] = dot_f32(q, kv.keys + static_cast<int64_t>(j) * a.head_dim, a.head_dim) * a.scale;
      max = std::max(max, probs[j]);
    }
    double sum = 0.0;
    for (int j = 0; j < kv.length; ++j) {
      probs[j] = kv.positions[j] > q_pos ? 0.0f : std::exp(probs[j] - max);
      sum += probs[j];
    }
    const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int j = 0; j < kv.length; ++j) probs[j] *= inv_sum;
    store_attention_weights(a, t, h, probs.data(), kv.length);
    if (a.values_f16) {
      for (int j = 0; j < kv.length; ++j) probs[j] = round_f16(probs[j]);
    }
    for (int d = 0; d < a.head_dim; ++d) {
      float acc = 0.0f;
      for (int j = 0; j < kv.length; ++j) {
        acc += kv.values[static_cast<int64_t>(j) * a.head_dim + d] * probs[j];
      }
      out[d] = acc;
    }
  }
}

// Online softmax (attention_online.h) with plain loops: scores one key at a time, libm exp,
// separate multiply and add.
void score_keys(const float* keys, int n_keys, const float* q, int head_dim, float* scores) {
  for (int m = 0; m < n_keys; ++m) {
    scores[m] = dot_f32(keys + static_cast<int64_t>(m) * head_dim, q, head_dim);
  }
}

float softmax_block(const float* scores, uint32_t visible, float scale, float* max, float* rescale,
                    float* p) {
  float x[kOnlineBlock];
  float block_max = -std::numeric_limits<float>::infinity();
  for (int m = 0; m < kOnlineBlock; ++m) {
    x[m] = scores[m] * scale;
    if ((visible >> m) & 1) block_max = std::max(block_max, x[m]);
  }
  raise_max(block_max, max, rescale);
  float sum = 0.0f;
  for (int m = 0; m < kOnlineBlock; ++m) {
    p[m] = (visible >> m) & 1 ? std::exp(x[m] - *max) : 0.0f;
    sum += p[m];
  }
  return sum;
}

void accumulate(float* const* accs, const float* rescale, const float* values,
                const float* const* ps, int n_queries, int n, int head_dim) {
  for (int k = 0; k < n_queries; ++k) {
    float* acc = accs[k];
    if (rescale[k] != 1.0f) {
      for (int d = 0; d < head_dim; ++d) acc[d] *= rescale[k];
    }
    for (int m = 0; m < n; ++m) {
      for (int d = 0; d < head_dim; ++d) {
        acc[d] += values[static_cast<int64_t>(m) * head_dim + d] * ps[k][m];
      }
    }
  }
}

void attention_online_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  static constexpr OnlineAttentionOps kOps{score_keys, softmax_block, accumulate};
  online_attention_items(a, begin, end, kOps);
}

}  // namespace

const KernelSet& scalar_kernel_set() {
  static const KernelSet kSet{
      "scalar",
      matmul_rows<dot_f32_bytes>,
      matmul_rows<dot_half<f16_to_f32>>,
      matmul_rows<dot_half<bf16_to_f32>>,
      matmul_rows<dot_q8_0>,
      matmul_rows<dot_q4_0>,
      matmul_rows<dot_f16_f32>,
      attention_items,
      attention_online_items,
      8,  // elementwise exp/silu as the AVX2 build (the scalar path changes sums, not ops)
  };
  return kSet;
}

}  // namespace pareto::kernels
