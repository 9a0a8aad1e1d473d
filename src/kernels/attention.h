// Scaled dot-product attention of a batch of query tokens over one layer's KV entries, with
// grouped-query heads and causal masking by stored position (an entry is visible to a query when
// entry position <= query position).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/thread_pool.h"
#include "kernels/kernel_path.h"

namespace pareto::kernels {

// Decodes a KV head's entries [begin, begin + n) into keys and values [n, head_dim] (f32): a
// cache whose entries are stored otherwise (f16 pages), read block by block.
struct KvBlockReader {
  const void* context = nullptr;
  void (*read)(const void* context, int begin, int n, float* keys, float* values) = nullptr;
};

// The stored entries of one KV head: keys and values [length, head_dim], positions [length].
// The online-softmax form also takes them through `reader` instead (keys and values null): it
// reads a block of entries at a time, so the f32 copy of a long cache is never made (at 16k
// entries that copy and its reading cost more than the attention's arithmetic).
struct KvHeadView {
  const float* keys = nullptr;
  const float* values = nullptr;
  const int32_t* positions = nullptr;
  int length = 0;
  KvBlockReader reader;
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
  // llama.cpp's arithmetic over an F16 cache (kSoftmaxRows; the online form ignores both). Its
  // mul_mat converts the F32 operand to F16, the F16 type's vec_dot type, before each product:
  //   keys_f16: the keys are F16 values; each query row is rounded to F16 (nearest even) before
  //     the scores, which then take ggml_vec_dot_f16's order (that of ggml_vec_dot_f32, but the
  //     head_dim % 4W tail summed in double), or for a batch of 2+ tokens with head_dim % W == 0
  //     tinyBLAS F16 x F16 (one W-lane accumulator, then the horizontal sum).
  //   values_f16: the values are F16 values; the normalized softmax row is rounded to F16 before
  //     the weighted sum of values (whose order stays that of the F32 cache).
  // Both false: the F32 cache's arithmetic.
  bool keys_f16 = false;
  bool values_f16 = false;
  // Optional, for KV-cache policies that score entries: kSoftmaxRows writes each (token t, head
  // h)'s normalized softmax row (before any F16 rounding for the values) over its KV head's stored
  // entries to weights[h / group] + (t * group + h % group) * kv[h / group].length (entries the
  // query may not see: 0). Empty: none. The online form keeps no row and ignores it.
  std::span<float* const> weights;
};

// The attention_items kernels' part of AttentionArgs::weights: item (t, h)'s row of `length`
// probabilities.
inline void store_attention_weights(const AttentionArgs& a, int64_t t, int h, const float* probs,
                                    int length) {
  if (a.weights.empty()) return;
  const int group = a.n_heads / a.n_kv_heads;
  float* row = a.weights[static_cast<size_t>(h / group)] +
               (t * group + h % group) * static_cast<int64_t>(length);
  for (int j = 0; j < length; ++j) row[j] = probs[j];
}

enum class AttentionAlgorithm {
  // llama.cpp's default (no flash attention): per (token, head) a row of n_entries scores, its
  // softmax, then the weighted sum of values. The oracle references are made this way.
  kSoftmaxRows,
  // Online softmax in one pass over keys and values, in blocks of 16 keys, the query heads of a
  // KV head together (attention_online.h); what llama.cpp's `-fa` switches to. No score row: a
  // rescaled accumulator instead. Same function; the rounding differs (and from llama.cpp -fa).
  // Ignores keys_f16 / values_f16: its arithmetic is its own over any cache (llama.cpp's -fa
  // over an F16 cache is another computation again, ggml_compute_forward_flash_attn_ext).
  kOnlineSoftmax,
};

// "softmax-rows" / "online-softmax".
std::string_view attention_algorithm_name(AttentionAlgorithm algorithm);

// Every path scores one (token, head) at a time over the stored entries; the full score matrix
// [n_tokens, n_kv] is never formed. kSoftmaxRows keeps a scratch row of n_entries floats per
// worker, kOnlineSoftmax one block of 16 scores and an accumulator per head. kScalar: plain loops
// (softmax rows: the max subtracted and the sum in double). kPortable: llama.cpp's exact order
// (kernels_portable.cpp, attention_online.h; SIMD forms in kernels_float_*.cpp). kScalar honors
// keys_f16 / values_f16 as roundings only (query and softmax row to F16; its order is its own).
void attention(const AttentionArgs& args, ThreadPool& pool, KernelPath path,
               AttentionAlgorithm algorithm = AttentionAlgorithm::kSoftmaxRows);

// The part of attention() that reads KV head `kv_head`: every token's query heads of that group,
// on the calling thread. The same items in the same arithmetic as attention() (bit for bit), for
// callers that spread the heads of many sequences over the pool in one dispatch. Only
// args.kv[kv_head] is read.
void attention_kv_head(const AttentionArgs& args, int kv_head, KernelPath path,
                       AttentionAlgorithm algorithm = AttentionAlgorithm::kSoftmaxRows);

}  // namespace pareto::kernels
