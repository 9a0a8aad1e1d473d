// KvCache: the keys and values of one sequence, per layer and KV head, each entry keeping the
// position it was computed at (keys are stored after RoPE). Shapes per (layer, kv_head):
//   keys [capacity, head_dim] f32, values [capacity, head_dim] f32, positions [capacity] i32.
// Design room: entries can later be dropped or compressed per layer and head (KV budgets), which
// is why lengths are per (layer, head) and positions are stored rather than implied by index.
// truncate() rolls back to a token count (speculative decoding's rejected drafts).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pareto::kv {

struct KvShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int capacity = 0;  // max entries per (layer, head)
};

class KvCache {
 public:
  KvCache() = default;
  explicit KvCache(const KvShape& shape);

  const KvShape& shape() const { return shape_; }
  // Tokens appended to the sequence so far (next token's position). Independent of evictions.
  int n_tokens() const { return n_tokens_; }
  int capacity() const { return shape_.capacity; }

  // Number of stored entries of (layer, head).
  int length(int layer, int head) const;
  // Appends one entry; CHECKs capacity. key/value are head_dim floats.
  void append(int layer, int head, int32_t position, std::span<const float> key,
              std::span<const float> value);
  // Marks `n` more tokens as appended (call once per forward, after all layers appended).
  void advance(int n) { n_tokens_ += n; }

  // Contiguous views of the stored entries of (layer, head): [length, head_dim].
  const float* keys(int layer, int head) const;
  const float* values(int layer, int head) const;
  const int32_t* positions(int layer, int head) const;

  // Drops every entry whose position is >= n_tokens, in all layers and heads; n_tokens() becomes n.
  void truncate(int n_tokens);
  void clear() { truncate(0); }

 private:
  size_t slot(int layer, int head) const;
  KvShape shape_;
  int n_tokens_ = 0;
  std::vector<float> keys_;       // [layers, heads, capacity, head_dim]
  std::vector<float> values_;     // [layers, heads, capacity, head_dim]
  std::vector<int32_t> positions_;  // [layers, heads, capacity]
  std::vector<int32_t> lengths_;    // [layers, heads]
};

}  // namespace pareto::kv
