// The default kernels: llama.cpp's CPU arithmetic, operation for operation, as its x86-64
// AVX2+FMA CPU backend (the `haswell` variant) computes it. It sums dot products in 8 float lanes
// with fused multiply-adds and then adds the lanes in a fixed shuffle order; which routine runs
// depends on the shapes and the batch size: llamafile's tinyBLAS for batches of 2+ contiguous
// activation rows (F32/F16 also need a row length that is a multiple of 8 and a row count that is
// a multiple of 4), ggml's vec_dot otherwise (always for a single token), repacked Q4_0 gemv/gemm
// when the row count is a multiple of 8. Reproducing those orders matters because the
// quantization steps between layers (Q8_0 activations, F16 activations) turn one-ulp differences
// into visibly different logits. Checked bit for bit against that build's intermediate tensors
// (tests/differential/data/README.md). llama.cpp's AVX-512 variants (zen4, skylakex, ...) sum the
// float products in 16 lanes and use a 16-wide exp, so they round differently; the same code
// instantiated with Width16 reproduces them (the shared oracle was made by such a build). The
// integer Q8_0/Q4_0 block dot products are 8-lane in both. Written as plain lane loops: they are
// the fallback for CPUs without AVX2+FMA+F16C and the reference that the SIMD float kernels
// (kernels_float_simd.cpp, which mirror them lane for lane) are tested against.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "base/half.h"
#include "kernels/attention_online.h"
#include "kernels/ggml_math.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels_quant_simd.h"
#include "kernels/quant.h"

namespace pareto::kernels {
namespace {

// The vector profile of the llama.cpp build being mirrored.
struct Width8 {  // AVX2 (haswell variant)
  static constexpr int kW = 8;
  static constexpr std::string_view kName = "llamacpp-avx2";
  static float hsum(const float (&v)[8]) { return ggml::hsum8(v); }
  static float vexp(float x) { return ggml::v_expf(x); }
  // GGML_F32x8_REDUCE of four accumulators.
  static float reduce4(float (&sum)[4][8]) {
    for (int t = 0; t < 8; ++t) {
      sum[0][t] += sum[2][t];
      sum[1][t] += sum[3][t];
    }
    for (int t = 0; t < 8; ++t) sum[0][t] += sum[1][t];
    float q[4];
    for (int t = 0; t < 4; ++t) q[t] = sum[0][t] + sum[0][t + 4];
    return (q[0] + q[1]) + (q[2] + q[3]);
  }
};

struct Width16 {  // AVX-512 (zen4, skylakex, icelake, ... variants)
  static constexpr int kW = 16;
  static constexpr std::string_view kName = "llamacpp-avx512";
  static float hsum(const float (&v)[16]) { return ggml::reduce_add16(v); }
  static float vexp(float x) { return ggml::v_expf16(x); }
  // GGML_F32x16_REDUCE of four accumulators.
  static float reduce4(float (&sum)[4][16]) {
    for (int t = 0; t < 16; ++t) {
      sum[0][t] += sum[2][t];
      sum[1][t] += sum[3][t];
    }
    for (int t = 0; t < 16; ++t) sum[0][t] += sum[1][t];
    return ggml::reduce_add16(sum[0]);
  }
};

// f16 -> f32 for all 65536 bit patterns, built once (ggml keeps the same table).
const float* f16_table() {
  static const std::unique_ptr<float[]> table = [] {
    auto t = std::make_unique<float[]>(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = f16_to_f32(static_cast<uint16_t>(i));
    return t;
  }();
  return table.get();
}

// tinyBLAS (llamafile_sgemm) dot product of n (a multiple of W) values: lane t accumulates
// elements t, t+W, ... with fma, then the horizontal sum.
template <class P, class Load>
float tinyblas_dot(int64_t n, Load load) {
  float acc[P::kW] = {};
  for (int64_t l = 0; l < n; l += P::kW) {
    for (int t = 0; t < P::kW; ++t) {
      const auto [a, b] = load(l + t);
      acc[t] = std::fma(a, b, acc[t]);
    }
  }
  return P::hsum(acc);
}

// ggml_vec_dot_f32 / ggml_vec_dot_f16 main loop: 4 accumulators of W lanes over chunks of 4W.
template <class P, class Load>
float vec_dot_main(int64_t np, Load load) {
  float sum[4][P::kW] = {};
  for (int64_t i = 0; i < np; i += 4 * P::kW) {
    for (int j = 0; j < 4; ++j) {
      for (int t = 0; t < P::kW; ++t) {
        const auto [a, b] = load(i + j * P::kW + t);
        sum[j][t] = std::fma(a, b, sum[j][t]);
      }
    }
  }
  return P::reduce4(sum);
}

// ggml_vec_dot_f32: the tail is summed in float with separate multiply and add (llama.cpp's
// x86-64 builds do not contract it; checked bit for bit against its intermediate tensors).
template <class P>
float vec_dot_f32(const float* a, const float* b, int64_t n) {
  const int64_t np = n & ~int64_t{4 * P::kW - 1};
  float sum = vec_dot_main<P>(np, [&](int64_t i) { return std::pair{a[i], b[i]}; });
  for (int64_t i = np; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Whether ggml's mul_mat hands a product to llamafile's tinyBLAS (F32/F16/BF16 weights): only for
// batches of 2+ tokens (single tokens go through ggml_vec_dot_*), a row length that is a multiple
// of the vector width and a row count that is a multiple of 4 (tinyBLAS's tile height).
template <class P>
bool uses_tinyblas(const WeightView& w, const PreparedActivations& x) {
  return x.n_tokens >= 2 && w.cols % P::kW == 0 && w.rows % 4 == 0;
}

template <class P>
float dot_f32_tinyblas(const uint8_t* w, const uint8_t* x, int64_t n) {
  const auto* a = reinterpret_cast<const float*>(w);
  const auto* b = reinterpret_cast<const float*>(x);
  return tinyblas_dot<P>(n, [&](int64_t i) { return std::pair{a[i], b[i]}; });
}

template <class P>
float dot_f32_vec(const uint8_t* w, const uint8_t* x, int64_t n) {
  return vec_dot_f32<P>(reinterpret_cast<const float*>(w), reinterpret_cast<const float*>(x), n);
}

template <class P>
float dot_f16_tinyblas(const uint8_t* w, const uint8_t* x, int64_t n) {
  const float* table = f16_table();
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const uint16_t*>(x);
  return tinyblas_dot<P>(n, [&](int64_t i) { return std::pair{table[a[i]], table[b[i]]}; });
}

// llama.cpp's AMX build, F16 weights x F32 activations (tinygemm_kernel_avx): the tinyBLAS lanes
// with the activations as they are (not rounded to F16), for every token count.
template <class P>
float dot_f16_f32act(const uint8_t* w, const uint8_t* x, int64_t n) {
  const float* table = f16_table();
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const float*>(x);
  return tinyblas_dot<P>(n, [&](int64_t i) { return std::pair{table[a[i]], b[i]}; });
}

// ggml_vec_dot_f16's order over n pairs load(i): the main loop of vec_dot_f32, the tail (n % 4W)
// summed in double from the float products.
template <class P, class Load>
float vec_dot_f16_order(int64_t n, Load load) {
  const int64_t np = n & ~int64_t{4 * P::kW - 1};
  double sum = vec_dot_main<P>(np, load);
  for (int64_t i = np; i < n; ++i) {
    const auto [a, b] = load(i);
    sum += static_cast<double>(a * b);
  }
  return static_cast<float>(sum);
}

// ggml_vec_dot_f16: the tail is summed in double.
template <class P>
float dot_f16_vec(const uint8_t* w, const uint8_t* x, int64_t n) {
  const float* table = f16_table();
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const uint16_t*>(x);
  const auto load = [&](int64_t i) { return std::pair{table[a[i]], table[b[i]]}; };
  const int64_t np = n & ~int64_t{4 * P::kW - 1};
  double sum = vec_dot_main<P>(np, load);
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(table[a[i]] * table[b[i]]);
  return static_cast<float>(sum);
}

template <class P>
float dot_bf16_tinyblas(const uint8_t* w, const uint8_t* x, int64_t n) {
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const uint16_t*>(x);
  return tinyblas_dot<P>(n, [&](int64_t i) {
    return std::pair{bf16_to_f32(a[i]), bf16_to_f32(b[i])};
  });
}

template <class P>
float dot_bf16_vec(const uint8_t* w, const uint8_t* x, int64_t n) {
  const auto* a = reinterpret_cast<const uint16_t*>(w);
  const auto* b = reinterpret_cast<const uint16_t*>(x);
  const auto load = [&](int64_t i) { return std::pair{bf16_to_f32(a[i]), bf16_to_f32(b[i])}; };
  const int64_t np = n & ~int64_t{4 * P::kW - 1};
  double sum = vec_dot_main<P>(np, load);
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(load(i).first * load(i).second);
  return static_cast<float>(sum);
}

// Q8_0/Q4_0 x Q8_0 (8 fma lanes, or the repacked Q4_0 order): kernels_quant_simd.h.

template <float (*kDot)(const uint8_t*, const uint8_t*, int64_t)>
void matmul_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                 int64_t row_end, float* y) {
  // Each weight row is read once from memory and reused (from L1) for every token.
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* wr = w.row(r);
    for (int64_t t = 0; t < x.n_tokens; ++t) y[t * w.rows + r] = kDot(wr, x.row(t), w.cols);
  }
}

// F32/F16/BF16: tinyBLAS or ggml_vec_dot, as ggml_compute_forward_mul_mat chooses.
template <class P, float (*kTinyblasDot)(const uint8_t*, const uint8_t*, int64_t),
          float (*kVecDot)(const uint8_t*, const uint8_t*, int64_t)>
void matmul_float_rows(const WeightView& w, const PreparedActivations& x, int64_t row_begin,
                       int64_t row_end, float* y) {
  if (uses_tinyblas<P>(w, x)) {
    matmul_rows<kTinyblasDot>(w, x, row_begin, row_end, y);
  } else {
    matmul_rows<kVecDot>(w, x, row_begin, row_end, y);
  }
}

float round_f16(float x) {
  return f16_to_f32(f32_to_f16(x));
}

// One score K[j] . q (q already rounded to F16 when keys_f16), as ggml_compute_forward_mul_mat
// computes kq = mul_mat(k, q): over an F32 cache ggml_vec_dot_f32 (the permuted queries are not
// contiguous, so tinyBLAS never takes them); over an F16 cache the queries are converted to F16
// into a contiguous buffer first, so a batch of 2+ tokens goes to tinyBLAS F16 x F16 when head_dim
// is a multiple of W (n_kv, the row count, is padded to 256), everything else to ggml_vec_dot_f16.
template <class P>
float attention_score(const AttentionArgs& a, bool single_query, const float* k, const float* q) {
  if (!a.keys_f16) return vec_dot_f32<P>(k, q, a.head_dim);
  const auto load = [&](int64_t i) { return std::pair{k[i], q[i]}; };
  if (!single_query && a.head_dim % P::kW == 0) return tinyblas_dot<P>(a.head_dim, load);
  return vec_dot_f16_order<P>(a.head_dim, load);
}

// Attention as llama.cpp evaluates it without flash attention, per (token, head):
//   scores = K q * scale: attention_score (keys_f16: q rounded to F16 first)
//   p = softmax(scores): exps through ggml's vector exp in chunks of W entries, each chunk's
//       lane sum added to a double; then p *= (float)(1 / sum); values_f16: p rounded to F16
//   out[d] = sum_j p_j V[j, d]: for a batch tinyBLAS (W lanes of fma over the entries, then
//       the horizontal sum); for a single token ggml_vec_dot_f32 over the KV view, which
//       llama.cpp pads to a multiple of 256 entries (4 accumulators of W lanes over chunks of 4W;
//       over an F16 cache tinyBLAS F16 x F16 / ggml_vec_dot_f16, the same orders: n_kv % 256 == 0
//       leaves vec_dot_f16 no tail)
// Cache entries are in cell order; chunks start at entry 0. Entries invisible to the query (later
// positions) and padding get p = 0 and so add nothing (fma(v, 0, acc) == acc).
template <class P>
void attention_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  constexpr int kW = P::kW;
  const int group = a.n_heads / a.n_kv_heads;
  const bool single_query = a.n_tokens == 1;
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
    // A multiple of 4W (so also of W): the padding adds exact zeros in either summation order.
    const int64_t n_padded = (kv.length + 4 * kW - 1) / (4 * kW) * (4 * kW);
    probs.assign(static_cast<size_t>(n_padded), 0.0f);
    float max = -INFINITY;
    for (int j = 0; j < kv.length; ++j) {
      if (kv.positions[j] > q_pos) continue;
      const float* k = kv.keys + static_cast<int64_t>(j) * a.head_dim;
      const float s = attention_score<P>(a, single_query, k, q);
      probs[static_cast<size_t>(j)] = s * a.scale;
      max = std::max(max, probs[static_cast<size_t>(j)]);
    }
    // llama.cpp pads the KV view to a multiple of the vector width; padding entries add nothing.
    double sum = 0.0;
    for (int64_t c = 0; c < n_padded; c += kW) {
      float e[kW];
      for (int i = 0; i < kW; ++i) {
        const int64_t j = c + i;
        e[i] = j < kv.length && kv.positions[j] <= q_pos ? P::vexp(probs[j] - max) : 0.0f;
        probs[static_cast<size_t>(j)] = e[i];
      }
      sum += static_cast<double>(P::hsum(e));
    }
    const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (float& p : probs) p *= inv_sum;
    store_attention_weights(a, t, h, probs.data(), kv.length);
    if (a.values_f16) {
      for (float& p : probs) p = round_f16(p);
    }
    const auto value = [&](int64_t j, int d) {
      return j < kv.length ? kv.values[j * a.head_dim + d] : 0.0f;
    };
    for (int d = 0; d < a.head_dim; ++d) {
      if (single_query) {
        out[d] = vec_dot_main<P>(n_padded, [&](int64_t j) {
          return std::pair{value(j, d), probs[static_cast<size_t>(j)]};
        });
        continue;
      }
      float acc[kW] = {};
      for (int64_t j = 0; j < kv.length; ++j) {
        acc[j % kW] =
            std::fma(kv.values[j * a.head_dim + d], probs[static_cast<size_t>(j)], acc[j % kW]);
      }
      out[d] = P::hsum(acc);
    }
  }
}

// Online softmax (attention_online.h): ggml_vec_dot_f32 scores, the build's vector exp, fused
// multiply-adds.
template <class P>
void online_score_keys(const float* keys, int n_keys, const float* q, int head_dim, float* scores) {
  for (int m = 0; m < n_keys; ++m) {
    scores[m] = vec_dot_f32<P>(keys + static_cast<int64_t>(m) * head_dim, q, head_dim);
  }
}

template <class P>
float online_softmax_block(const float* scores, uint32_t visible, float scale, float* max,
                           float* rescale, float* p) {
  static_assert(kOnlineBlock == 16);
  float x[16];
  float block_max = -INFINITY;
  for (int m = 0; m < 16; ++m) {
    x[m] = scores[m] * scale;
    if ((visible >> m) & 1) block_max = std::max(block_max, x[m]);
  }
  raise_max(block_max, max, rescale);
  for (int m = 0; m < 16; ++m) p[m] = (visible >> m) & 1 ? P::vexp(x[m] - *max) : 0.0f;
  if constexpr (P::kW == 16) {
    float v[16];
    std::copy_n(p, 16, v);
    return P::hsum(v);
  } else {
    float c[8];
    for (int i = 0; i < 8; ++i) c[i] = p[i] + p[i + 8];
    return P::hsum(c);
  }
}

void online_accumulate(float* const* accs, const float* rescale, const float* values,
                       const float* const* ps, int n_queries, int n, int head_dim) {
  for (int k = 0; k < n_queries; ++k) {
    float* acc = accs[k];
    if (rescale[k] != 1.0f) {
      for (int d = 0; d < head_dim; ++d) acc[d] *= rescale[k];
    }
    for (int m = 0; m < n; ++m) {
      const float* v = values + static_cast<int64_t>(m) * head_dim;
      for (int d = 0; d < head_dim; ++d) acc[d] = std::fma(v[d], ps[k][m], acc[d]);
    }
  }
}

template <class P>
void attention_online_items(const AttentionArgs& a, int64_t begin, int64_t end) {
  static constexpr OnlineAttentionOps kOps{online_score_keys<P>, online_softmax_block<P>,
                                           online_accumulate};
  online_attention_items(a, begin, end, kOps);
}

template <class P>
const KernelSet& make_portable_kernel_set() {
  static const KernelSet kSet{
      P::kName,
      matmul_float_rows<P, dot_f32_tinyblas<P>, dot_f32_vec<P>>,
      matmul_float_rows<P, dot_f16_tinyblas<P>, dot_f16_vec<P>>,
      matmul_float_rows<P, dot_bf16_tinyblas<P>, dot_bf16_vec<P>>,
      matmul_q8_0_rows_fast,  // kernels_quant_simd.h: SIMD, bit-identical to the lane loops
      matmul_q4_0_rows_fast,
      matmul_rows<dot_f16_f32act<P>>,
      attention_items<P>,
      attention_online_items<P>,
      P::kW,
  };
  return kSet;
}

}  // namespace

// portable_kernel_set() / portable_avx512_kernel_set() take these and swap in the SIMD float
// entries where the CPU has them (kernels_float_simd.cpp).
const KernelSet& portable_lanes_kernel_set() {
  return make_portable_kernel_set<Width8>();
}
const KernelSet& portable_avx512_lanes_kernel_set() {
  return make_portable_kernel_set<Width16>();
}

}  // namespace pareto::kernels
