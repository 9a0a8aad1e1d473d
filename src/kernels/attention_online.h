// Internal: attention with an online softmax (Milakov & Gimelshein 2018, "Online normalizer
// calculation for softmax"), in blocks of keys as FlashAttention-2 (Dao 2023) does on GPUs:
// one pass over keys and values, no score row.
//
// Per (token, head), over the entries up to the last visible one, in blocks B of up to
// kOnlineBlock consecutive entries, with M = -inf, S = 0, acc = 0:
//   x_j = dot(k_j, q) * scale for j in B            (the kernel set's ggml_vec_dot_f32 order)
//   m = max(M, max of x_j over the visible j)        (a block with none visible is skipped)
//   r = exp(M - m) (libm; 1 when the maximum stays); M = m
//   p_j = exp(x_j - M) for visible j, 0 for masked   (the kernel set's vector exp)
//   S = S * r + sum_j p_j                            (the sum in the set's W-lane order, below)
//   acc = acc * r (when r != 1); acc = fma(v_j, p_j, acc) for j in B in order
// out = acc * (S == 0 ? 0 : 1 / S). A masked entry adds fma(v, 0, acc) == acc (v finite).
// Block sum: W = 16 (AVX-512 order) reduce_add16 of the 16 values; W = 8 (AVX2 order) hsum8 of
// p_i + p_{i+8}; scalar set: in entry order.
//
// Work items are numbered KV head first: item = (kv_head * n_tokens + token) * group + i for query
// head kv_head * group + i (group = n_heads / n_kv_heads). A range of items is processed block by
// block, each block of keys and values read once for all its queries of a KV head (the query
// heads that share it, GQA, and the consecutive tokens of a prompt), and kept in L1 meanwhile.
// Every query's arithmetic is the same whatever the split into work items.
// The sets differ only in how the vector work is done; SIMD forms are bit-identical to their
// lane loops. The scalar set is the reference: plain dot, libm exp, separate multiply and add.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/attention.h"

namespace pareto::kernels {

inline constexpr int kOnlineBlock = 16;   // keys per block
inline constexpr int kOnlineQueries = 4;  // queries per accumulate call

struct OnlineAttentionOps {
  // scores[m] = dot(keys[m * head_dim ..], q) for m < n_keys (n_keys <= kOnlineBlock).
  void (*score_keys)(const float* keys, int n_keys, const float* q, int head_dim, float* scores);
  // One block's softmax step: bit m of `visible` (nonzero) marks scores[m] as visible. Updates
  // *max, sets *rescale, writes p[0..kOnlineBlock) (0 where masked or past the block) and returns
  // the block sum, as the header describes.
  float (*softmax_block)(const float* scores, uint32_t visible, float scale, float* max,
                         float* rescale, float* p);
  // For each of n_queries (<= kOnlineQueries) queries k: acc[k] *= rescale[k] (skipped when it
  // is 1); then for m < n in order acc[k] += values[m] * p[k][m] (fused in the llama.cpp-order
  // sets). acc[k] [head_dim], values [n, head_dim]. Several queries per call share the value loads.
  void (*accumulate)(float* const* acc, const float* rescale, const float* values,
                     const float* const* p, int n_queries, int n, int head_dim);
};

// The running maximum's update, shared by every set: *rescale = exp(*max - block_max) (libm)
// when block_max is larger (and *max = block_max), else 1.
inline void raise_max(float block_max, float* max, float* rescale) {
  *rescale = 1.0f;
  if (block_max > *max) {
    *rescale = std::exp(*max - block_max);  // 0 for the first block
    *max = block_max;
  }
}

// Outputs of work items [begin, end) (numbered as above) with the given set's ops.
void online_attention_items(const AttentionArgs& a, int64_t begin, int64_t end,
                            const OnlineAttentionOps& ops);

}  // namespace pareto::kernels
