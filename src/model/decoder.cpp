// The decoder forward pass, in llama.cpp's order of operations (llm_build_llama / qwen2):
//   x = embd[tokens]
//   per layer: h = rmsnorm(x) * attn_norm; q,k,v = h W (+ b); rope(q, k); append k, v to cache;
//              x += attention(q, cache) W_o; h = rmsnorm(x) * ffn_norm;
//              x += (silu(h W_gate) * (h W_up)) W_down
//   logits = (rmsnorm(x) * output_norm) W_out
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/aligned_vector.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/decoder.h"

namespace pareto::model::detail {
namespace {

kernels::RopeMode rope_mode(RopeStyle style) {
  return style == RopeStyle::kHalves ? kernels::RopeMode::kNeox : kernels::RopeMode::kNorm;
}

Status validate_batch(const ModelConfig& c, std::span<const int32_t> tokens,
                      const kv::KvCache& cache) {
  if (tokens.empty()) return make_error("model: forward: empty batch (no tokens)");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.n_vocab) {
      return make_error("model: forward: token id ", tokens[i], " at batch index ", i,
                        " out of range [0, ", c.n_vocab, ")");
    }
  }
  const kv::KvShape& s = cache.shape();
  if (s.n_layers != c.n_layers || s.n_kv_heads != c.n_kv_heads || s.head_dim != c.head_dim) {
    return make_error("model: forward: KV cache shape (layers ", s.n_layers, ", kv heads ",
                      s.n_kv_heads, ", head dim ", s.head_dim, ") does not match the model (",
                      c.n_layers, ", ", c.n_kv_heads, ", ", c.head_dim, ")");
  }
  int longest = 0;  // entries of the fullest (layer, head)
  for (int l = 0; l < c.n_layers; ++l) {
    for (int h = 0; h < c.n_kv_heads; ++h) longest = std::max(longest, cache.length(l, h));
  }
  const int64_t needed = int64_t{longest} + static_cast<int64_t>(tokens.size());
  if (needed > cache.capacity() ||
      int64_t{cache.n_tokens()} + static_cast<int64_t>(tokens.size()) > (int64_t{1} << 31) - 1) {
    return make_error("model: forward: prompt longer than the context: ", cache.n_tokens(),
                      " tokens in the cache + ", tokens.size(), " new > capacity ",
                      cache.capacity());
  }
  return ok();
}

}  // namespace

Status DecoderModel::forward(std::span<const int32_t> tokens, kv::KvCache& cache,
                             std::vector<float>& logits, ThreadPool& pool,
                             const ForwardOptions& options) const {
  const ModelConfig& c = config_;
  PARETO_RETURN_IF_ERROR(validate_batch(c, tokens, cache));
  const kernels::KernelPath path = options.kernel_path
                                       ? *options.kernel_path
                                       : kernels::select_kernel_path(options.scalar_kernels);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t dim = c.dim;
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  std::vector<int32_t> positions(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) positions[t] = cache.n_tokens() + static_cast<int32_t>(t);

  AlignedVector<float> x(static_cast<size_t>(n * dim));           // [n, dim] residual stream
  AlignedVector<float> h(static_cast<size_t>(n * dim));           // [n, dim] normed input
  AlignedVector<float> q(static_cast<size_t>(n * q_dim));         // [n, n_heads, head_dim]
  AlignedVector<float> k(static_cast<size_t>(n * kv_dim));        // [n, n_kv_heads, head_dim]
  AlignedVector<float> v(static_cast<size_t>(n * kv_dim));        // [n, n_kv_heads, head_dim]
  AlignedVector<float> attn(static_cast<size_t>(n * q_dim));      // [n, n_heads, head_dim]
  AlignedVector<float> proj(static_cast<size_t>(n * dim));        // [n, dim]
  AlignedVector<float> gate(static_cast<size_t>(n * c.ffn_dim));  // [n, ffn_dim]
  AlignedVector<float> up(static_cast<size_t>(n * c.ffn_dim));    // [n, ffn_dim]
  std::vector<kernels::KvHeadView> kv_views(static_cast<size_t>(c.n_kv_heads));

  kernels::get_rows(weights_.token_embd, tokens, x.data());

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    kernels::rms_norm(x.data(), w.attn_norm, n, dim, c.rms_eps, h.data());
    kernels::matmul(w.attn_q, h.data(), n, q.data(), pool, path);
    kernels::matmul(w.attn_k, h.data(), n, k.data(), pool, path);
    kernels::matmul(w.attn_v, h.data(), n, v.data(), pool, path);
    if (c.qkv_bias) {
      kernels::add_bias(q.data(), w.bias_q, n, q_dim);
      kernels::add_bias(k.data(), w.bias_k, n, kv_dim);
      kernels::add_bias(v.data(), w.bias_v, n, kv_dim);
    }
    kernels::rope_inplace(q.data(), positions.data(), n, c.n_heads, c.head_dim,
                          rope_params(c, rope_mode(c.rope_style)));
    kernels::rope_inplace(k.data(), positions.data(), n, c.n_kv_heads, c.head_dim,
                          rope_params(c, rope_mode(c.rope_style)));
    for (int64_t t = 0; t < n; ++t) {
      for (int g = 0; g < c.n_kv_heads; ++g) {
        const int64_t off = (t * c.n_kv_heads + g) * c.head_dim;
        const auto hd = static_cast<size_t>(c.head_dim);
        cache.append(l, g, positions[t], std::span<const float>(k.data() + off, hd),
                     std::span<const float>(v.data() + off, hd));
      }
    }
    for (int g = 0; g < c.n_kv_heads; ++g) {
      kv_views[static_cast<size_t>(g)] = {cache.keys(l, g), cache.values(l, g),
                                          cache.positions(l, g), cache.length(l, g)};
    }
    kernels::AttentionArgs args;
    args.q = q.data();
    args.q_positions = positions.data();
    args.n_tokens = static_cast<int>(n);
    args.n_heads = c.n_heads;
    args.n_kv_heads = c.n_kv_heads;
    args.head_dim = c.head_dim;
    args.scale = scale;
    args.kv = kv_views;
    args.out = attn.data();
    kernels::attention(args, pool, path, options.attention);

    // After the last layer's attention only the rows whose logits are wanted matter; llama.cpp
    // drops the others after the output projection (whose kernel depends on the batch size), so
    // that projection still takes every row. Every op below is row-independent.
    int64_t first = 0;
    if (l == c.n_layers - 1 && !options.all_logits) first = n - 1;
    const int64_t rows = n - first;
    kernels::matmul(w.attn_output, attn.data(), n, proj.data(), pool, path);
    if (first > 0) std::copy_n(proj.data() + first * dim, rows * dim, proj.data());
    float* xs = x.data() + first * dim;
    kernels::add_inplace(xs, proj.data(), rows * dim);
    kernels::rms_norm(xs, w.ffn_norm, rows, dim, c.rms_eps, h.data());
    kernels::matmul(w.ffn_gate, h.data(), rows, gate.data(), pool, path);
    kernels::matmul(w.ffn_up, h.data(), rows, up.data(), pool, path);
    kernels::silu_mul_inplace(gate.data(), up.data(), rows, c.ffn_dim, path);
    kernels::matmul(w.ffn_down, gate.data(), rows, proj.data(), pool, path);
    kernels::add_inplace(xs, proj.data(), rows * dim);
  }
  cache.advance(static_cast<int>(n));

  const int64_t n_out = options.all_logits ? n : 1;
  const float* xs = x.data() + (n - n_out) * dim;
  kernels::rms_norm(xs, weights_.output_norm, n_out, dim, c.rms_eps, h.data());
  logits.resize(static_cast<size_t>(n_out * c.n_vocab));
  kernels::matmul(weights_.output, h.data(), n_out, logits.data(), pool, path);
  return ok();
}

}  // namespace pareto::model::detail
