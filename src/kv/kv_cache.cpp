#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace pareto::kv {

KvCache::KvCache(const KvShape& shape) : shape_(shape) {
  PARETO_CHECK(shape.n_layers >= 0 && shape.n_kv_heads >= 0 && shape.head_dim >= 0 &&
               shape.capacity >= 0);
  const size_t n_slots =
      static_cast<size_t>(shape.n_layers) * static_cast<size_t>(shape.n_kv_heads);
  const size_t entries = n_slots * static_cast<size_t>(shape.capacity);
  keys_.resize(entries * static_cast<size_t>(shape.head_dim));
  values_.resize(entries * static_cast<size_t>(shape.head_dim));
  positions_.resize(entries);
  lengths_.assign(n_slots, 0);
}

size_t KvCache::slot(int layer, int head) const {
  PARETO_CHECK(layer >= 0 && layer < shape_.n_layers && head >= 0 && head < shape_.n_kv_heads);
  return static_cast<size_t>(layer) * static_cast<size_t>(shape_.n_kv_heads) +
         static_cast<size_t>(head);
}

int KvCache::length(int layer, int head) const {
  return lengths_[slot(layer, head)];
}

void KvCache::append(int layer, int head, int32_t position, std::span<const float> key,
                     std::span<const float> value) {
  const size_t s = slot(layer, head);
  PARETO_CHECK_MSG(lengths_[s] < shape_.capacity, "KvCache::append: capacity exceeded");
  PARETO_CHECK(key.size() == static_cast<size_t>(shape_.head_dim));
  PARETO_CHECK(value.size() == static_cast<size_t>(shape_.head_dim));
  const size_t entry = s * static_cast<size_t>(shape_.capacity) + static_cast<size_t>(lengths_[s]);
  const size_t offset = entry * static_cast<size_t>(shape_.head_dim);
  std::copy(key.begin(), key.end(), keys_.begin() + static_cast<std::ptrdiff_t>(offset));
  std::copy(value.begin(), value.end(), values_.begin() + static_cast<std::ptrdiff_t>(offset));
  positions_[entry] = position;
  ++lengths_[s];
}

const float* KvCache::keys(int layer, int head) const {
  return keys_.data() + slot(layer, head) * static_cast<size_t>(shape_.capacity) *
                            static_cast<size_t>(shape_.head_dim);
}

const float* KvCache::values(int layer, int head) const {
  return values_.data() + slot(layer, head) * static_cast<size_t>(shape_.capacity) *
                              static_cast<size_t>(shape_.head_dim);
}

const int32_t* KvCache::positions(int layer, int head) const {
  return positions_.data() + slot(layer, head) * static_cast<size_t>(shape_.capacity);
}

void KvCache::truncate(int n_tokens) {
  PARETO_CHECK(n_tokens >= 0);
  if (n_tokens >= n_tokens_) return;
  const size_t head_dim = static_cast<size_t>(shape_.head_dim);
  for (size_t s = 0; s < lengths_.size(); ++s) {
    // Keep entries with position < n_tokens, compacting in order (entries need not be sorted by
    // position once eviction exists).
    const size_t base = s * static_cast<size_t>(shape_.capacity);
    int kept = 0;
    for (int j = 0; j < lengths_[s]; ++j) {
      const size_t from = base + static_cast<size_t>(j);
      if (positions_[from] >= n_tokens) continue;
      const size_t to = base + static_cast<size_t>(kept);
      if (to != from) {
        positions_[to] = positions_[from];
        std::memmove(&keys_[to * head_dim], &keys_[from * head_dim], head_dim * sizeof(float));
        std::memmove(&values_[to * head_dim], &values_[from * head_dim], head_dim * sizeof(float));
      }
      ++kept;
    }
    lengths_[s] = kept;
  }
  n_tokens_ = n_tokens;
}

}  // namespace pareto::kv
