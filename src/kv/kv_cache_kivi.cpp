// KvCache's KIVI parts (kv_kivi.h): sealing recent entries into quantized groups, decoding them,
// and copying them with their entries. The rest of the cache is in kv_cache.cpp.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "kv/kv_cache.h"
#include "kv/kv_kivi.h"

namespace pareto::kv {

void KvCache::seal(Slot& s, int32_t boundary) {
  const KvPoolOptions& o = pool_->options();
  const int kb = kivi_bits(o.key_type), vb = kivi_bits(o.value_type);
  const int e = o.page_entries, hd = o.head_dim;
  const auto hdz = static_cast<size_t>(hd);
  const auto pos = [&](int j) {
    return pool_->positions(s.pages[static_cast<size_t>(j / e)])[j % e];
  };
  int end = s.sealed;
  while (end < s.length && pos(end) < boundary) ++end;
  if (end == s.sealed) return;
  std::vector<float> keys, value(hdz);
  for (int j = s.sealed; j < end;) {
    // One group of positions: its live entries share the keys' per-channel parameters.
    const int32_t group = pos(j) / o.kivi_group;
    int k = j;
    while (k < end && pos(k) / o.kivi_group == group) ++k;
    const auto row = [&](int i) { return static_cast<size_t>(i - s.sealed) * hdz; };
    std::shared_ptr<std::vector<uint16_t>> params;
    if (kb) {
      keys.resize(static_cast<size_t>(k - j) * hdz);
      kv_decode(KvType::kF16, reinterpret_cast<const uint8_t*>(s.recent_keys.data() + row(j)),
                keys.data(), (k - j) * hd);
      params = std::make_shared<std::vector<uint16_t>>(2 * hdz);
      kivi::key_group_params(kb, keys.data(), k - j, hd, params->data());
      s.key_groups.push_back({pos(j), pos(k - 1), params});
    }
    for (int i = j; i < k; ++i) {
      own_page(s, static_cast<size_t>(i / e));
      const KvPool::PageId p = s.pages[static_cast<size_t>(i / e)];
      if (kb) {
        kivi::encode_key(kb, keys.data() + static_cast<size_t>(i - j) * hdz, params->data(), hd,
                         pool_->key(p, i % e));
      }
      if (vb) {
        kv_decode(KvType::kF16, reinterpret_cast<const uint8_t*>(s.recent_values.data() + row(i)),
                  value.data(), hd);
        kivi::encode_value(vb, value.data(), hd, pool_->value(p, i % e));
      }
    }
    j = k;
  }
  const auto done = static_cast<std::ptrdiff_t>(static_cast<size_t>(end - s.sealed) * hdz);
  if (kb) s.recent_keys.erase(s.recent_keys.begin(), s.recent_keys.begin() + done);
  if (vb) s.recent_values.erase(s.recent_values.begin(), s.recent_values.begin() + done);
  s.sealed = end;
}

void KvCache::gather_kivi(const Slot& s, int begin, int end, float* keys, float* values) const {
  const KvPoolOptions& o = pool_->options();
  const int kb = kivi_bits(o.key_type), vb = kivi_bits(o.value_type);
  if (!kb) keys = nullptr;
  if (!vb) values = nullptr;
  const int e = o.page_entries, hd = o.head_dim;
  const auto hdz = static_cast<size_t>(hd);
  const auto out = [&](int j) { return static_cast<size_t>(j - begin) * hdz; };
  // Quantized entries: keys by their group's parameters (groups ascend with the entries).
  const int quantized_end = std::min(end, s.sealed);
  size_t g = 0;
  if (keys && begin < quantized_end) {
    const int32_t first = pool_->positions(s.pages[static_cast<size_t>(begin / e)])[begin % e];
    g = static_cast<size_t>(
        std::upper_bound(s.key_groups.begin(), s.key_groups.end(), first,
                         [](int32_t p, const KeyGroup& kg) { return p < kg.first; }) -
        s.key_groups.begin());
    PARETO_CHECK(g > 0);
    --g;
  }
  // A group's parameters, widened (on the stack for the usual head sizes: this runs per layer,
  // head and step).
  constexpr size_t kStack = 256;
  std::array<float, 2 * kStack> stack;  // written before read (widen_key_params)
  std::vector<float> heap(keys && hdz > kStack ? 2 * hdz : 0);
  float* min = heap.empty() ? stack.data() : heap.data();
  float* scale = min + hdz;
  size_t widened = s.key_groups.size();  // the group whose parameters are in min, scale
  for (int j = begin; j < quantized_end; ++j) {
    const KvPool::PageId p = s.pages[static_cast<size_t>(j / e)];
    if (keys) {
      const int32_t position = pool_->positions(p)[j % e];
      while (s.key_groups[g].last < position) ++g;
      PARETO_CHECK(g < s.key_groups.size() && s.key_groups[g].first <= position);
      if (widened != g) {
        kivi::widen_key_params(s.key_groups[g].params->data(), hd, min, scale);
        widened = g;
      }
      kivi::decode_key(kb, pool_->key(p, j % e), min, scale, hd, keys + out(j));
    }
    if (values) kivi::decode_value(vb, pool_->value(p, j % e), hd, values + out(j));
  }
  // Recent entries: f16, consecutive rows.
  const int from = std::max(begin, s.sealed);
  if (from >= end) return;
  const auto row = static_cast<size_t>(from - s.sealed) * hdz;
  if (keys) {
    kv_decode(KvType::kF16, reinterpret_cast<const uint8_t*>(s.recent_keys.data() + row),
              keys + out(from), (end - from) * hd);
  }
  if (values) {
    kv_decode(KvType::kF16, reinterpret_cast<const uint8_t*>(s.recent_values.data() + row),
              values + out(from), (end - from) * hd);
  }
}

void KvCache::copy_kivi_parts(const Slot& s, int j, Slot& t, size_t& group) const {
  const KvPoolOptions& o = pool_->options();
  const auto hd = static_cast<size_t>(o.head_dim);
  const int32_t position =
      t.length > 0 ? pool_->positions(t.pages.back())[(t.length - 1) % o.page_entries] : 0;
  const auto add_recent = [&](const float* key, const float* value) {
    for (auto [rows, v] : {std::pair{&t.recent_keys, key}, std::pair{&t.recent_values, value}}) {
      if (!v) continue;
      rows->resize(rows->size() + hd);
      kv_encode(KvType::kF16, v, reinterpret_cast<uint8_t*>(rows->data() + rows->size() - hd),
                o.head_dim);
    }
  };
  const bool key_kivi = kivi_bits(o.key_type) != 0, value_kivi = kivi_bits(o.value_type) != 0;
  if (j >= s.sealed) {
    // A recent entry: its f16 rows, as they are.
    const size_t row = static_cast<size_t>(j - s.sealed) * hd;
    if (key_kivi)
      t.recent_keys.insert(t.recent_keys.end(), s.recent_keys.begin() + row,
                           s.recent_keys.begin() + row + hd);
    if (value_kivi)
      t.recent_values.insert(t.recent_values.end(), s.recent_values.begin() + row,
                             s.recent_values.begin() + row + hd);
    return;
  }
  if (t.sealed == t.length - 1) {
    // A quantized entry joining a quantized prefix: its codes were copied; its key group goes too.
    ++t.sealed;
    if (!key_kivi) return;
    while (group < s.key_groups.size() && s.key_groups[group].last < position) ++group;
    PARETO_CHECK(group < s.key_groups.size() && s.key_groups[group].first <= position);
    const KeyGroup* g = &s.key_groups[group];
    if (!t.key_groups.empty() && t.key_groups.back().params == g->params) {
      t.key_groups.back().last = position;
    } else {
      t.key_groups.push_back({position, position, g->params});
    }
    return;
  }
  // A quantized entry after recent ones: it joins them as its decoded f16 (the order of the
  // quantized prefix must hold).
  std::vector<float> key(hd), value(hd);
  gather_kivi(s, j, j + 1, key.data(), value.data());
  add_recent(key_kivi ? key.data() : nullptr, value_kivi ? value.data() : nullptr);
}

}  // namespace pareto::kv
