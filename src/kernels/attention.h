// Scaled dot-product attention of a batch of query tokens over one layer's KV entries, with
// grouped-query heads and causal masking by stored position (an entry is visible to a query when
// entry position <= query position).
#pragma once

#include <cstdint>
#include <span>

#include "base/thread_pool.h"
#include "kernels/kernel_path.h"

namespace pareto::kernels {

// The stored entries of one KV head: keys and values [length, head_dim], positions [length].
struct KvHeadView {
  const float* keys = nullptr;
  const float* values = nullptr;
  const int32_t* positions = nullptr;
  int length = 0;
};

// One past the last stored entry visible to a query at q_pos: the entries after it are all masked,
// so the kernels neither score nor (in a batch) sum them.
inline int visible_end(const KvHeadView& kv, int32_t q_pos) {
  int end = kv.length;
  while (end > 0 && kv.positions[end - 1] > q_pos) --end;
  return end;
}

struct AttentionArgs {
  const float* q = nullptr;              // [n_tokens, n_heads, head_dim]
  const int32_t* q_positions = nullptr;  // [n_tokens]
  int n_tokens = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 1.0f;              // applied to q.k, usually 1/sqrt(head_dim)
  std::span<const KvHeadView> kv;  // [n_kv_heads]
  float* out = nullptr;            // [n_tokens, n_heads, head_dim]
};

// Both paths score one (token, head) at a time over the stored entries, with a scratch row of
// n_entries floats per worker (never [n_tokens, n_kv] for the batch). kScalar: plain loops, softmax
// with the max subtracted and the sum in double. kPortable: llama.cpp's exact order (see
// kernels_portable.cpp; AVX2 form in kernels_float_simd.cpp).
void attention(const AttentionArgs& args, ThreadPool& pool, KernelPath path);

}  // namespace pareto::kernels
