// A batch for Model::forward: entries from one or more sequences evaluated together. Each entry
// is a token at a position of a sequence; the entries of one sequence are consecutive in the
// batch. An entry attends to its sequence's KV cache and to the new entries it can see:
//   - kCausal (default): every new entry of its sequence at a position <= its own (a prompt
//     chunk, a decode token, a chain of draft tokens);
//   - a tree: `parent` is the index in the batch of the entry it continues (kTreeRoot: none, it
//     continues the cache). It sees its ancestors and itself only, so siblings may share a
//     position (the branches of a speculative token tree). A sequence's entries are all causal or
//     all tree entries; a parent comes before its children.
// Logit rows are produced only for entries with `logits` set, in batch order.
#pragma once

#include <cstdint>
#include <vector>

#include "base/aligned_vector.h"
#include "kernels/attention.h"

namespace pareto::model {

inline constexpr int32_t kCausal = -2;
inline constexpr int32_t kTreeRoot = -1;

struct BatchEntry {
  int32_t token = 0;
  int32_t position = 0;
  int32_t seq = 0;  // index into the caches passed to forward
  bool logits = false;
  int32_t parent = kCausal;
};

// One sequence's consecutive entries in a batch, [begin, end).
struct BatchRun {
  int32_t seq = 0;
  int64_t begin = 0, end = 0;
  bool tree = false;
};

// Buffers of one forward, reused across calls: they grow to the largest batch (and KV length)
// seen and are never shrunk, so steady-state decoding allocates nothing.
struct ForwardWorkspace {
  AlignedVector<float> x, h, q, k, v, attn, proj, gate, up;  // [n, width] activations
  std::vector<int32_t> tokens, positions, parents, out_rows;
  AlignedVector<float> kv_keys, kv_values;  // one sequence's gathered entries, every KV head
  std::vector<int32_t> kv_positions;
  AlignedVector<float> tree_keys, tree_values;  // a tree's new entries, every KV head
  std::vector<int32_t> tree_positions, chain;
  std::vector<kernels::KvHeadView> views;  // [n_kv_heads]
  std::vector<size_t> head_first;          // [n_kv_heads]: head g's first gathered entry
  std::vector<float> observed;  // attention weights for an AttentionObserver (the separate pass)
  // The attention weights the kernels write for observed runs (AttentionArgs::weights): per run of
  // `runs`, KV head g's [n_queries * group * length] rows from weights[first[g]]; empty first:
  // the run is not observed this layer.
  struct ObservedRun {
    std::vector<float> weights;
    std::vector<size_t> first;  // [n_kv_heads + 1]
  };
  std::vector<ObservedRun> observed_runs;
  std::vector<BatchRun> runs;
  std::vector<uint8_t> seen;  // [n caches]
  // Short causal runs attended in one dispatch (decoder.cpp): their indices into `runs`, and per
  // pool thread the one (sequence, KV head) it has gathered.
  std::vector<int32_t> short_runs;
  struct HeadScratch {
    AlignedVector<float> keys, values;
    std::vector<int32_t> positions;
    std::vector<kernels::KvHeadView> views;  // [n_kv_heads], only the unit's head set
    std::vector<float*> weights;             // [n_kv_heads]: AttentionArgs::weights
  };
  std::vector<HeadScratch> head_scratch;  // [pool threads]
};

}  // namespace pareto::model
