#include "kv/kv_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <set>

#include "base/check.h"
#include "kv/kv_kivi.h"

namespace pareto::kv {

KvCache::KvCache(std::shared_ptr<KvPool> pool, int capacity)
    : pool_(std::move(pool)), capacity_(capacity) {
  PARETO_CHECK(pool_ != nullptr && capacity >= 0);
  const KvPoolOptions& o = pool_->options();
  slots_.resize(static_cast<size_t>(o.n_layers) * static_cast<size_t>(o.n_kv_heads));
}

KvCache::KvCache(const KvShape& shape, KvType key_type, KvType value_type)
    : KvCache(std::make_shared<KvPool>(KvPoolOptions{shape.n_layers, shape.n_kv_heads,
                                                     shape.head_dim, key_type, value_type}),
              shape.capacity) {}

KvCache::~KvCache() {
  release_all();
}

KvCache::KvCache(KvCache&& other) noexcept
    : pool_(std::move(other.pool_)),
      capacity_(other.capacity_),
      n_tokens_(other.n_tokens_),
      slots_(std::move(other.slots_)) {
  other.slots_.clear();
  other.n_tokens_ = 0;
}

KvCache& KvCache::operator=(KvCache&& other) noexcept {
  if (this != &other) {
    release_all();
    pool_ = std::move(other.pool_);
    capacity_ = other.capacity_;
    n_tokens_ = other.n_tokens_;
    slots_ = std::move(other.slots_);
    other.slots_.clear();
    other.n_tokens_ = 0;
  }
  return *this;
}

void KvCache::release_all() {
  for (Slot& s : slots_) {
    for (KvPool::PageId p : s.pages) pool_->release(p);
    s.pages.clear();
    s.length = 0;
    s.sealed = 0;
    s.recent_keys.clear();
    s.recent_values.clear();
    s.key_groups.clear();
  }
}

bool KvCache::kivi() const {
  return pool_ && (kivi_bits(pool_->options().key_type) || kivi_bits(pool_->options().value_type));
}

KvCache KvCache::fork() const {
  KvCache copy(pool_, capacity_);
  copy.n_tokens_ = n_tokens_;
  copy.slots_ = slots_;
  for (const Slot& s : slots_) {
    for (KvPool::PageId p : s.pages) pool_->retain(p);
  }
  return copy;
}

KvShape KvCache::shape() const {
  if (!pool_) return {};
  const KvPoolOptions& o = pool_->options();
  return {o.n_layers, o.n_kv_heads, o.head_dim, capacity_};
}

void KvCache::set_n_tokens(int n) {
  PARETO_CHECK(n >= 0);
  n_tokens_ = n;
}

KvCache::Slot& KvCache::slot(int layer, int head) {
  const KvPoolOptions& o = pool_->options();
  PARETO_CHECK(layer >= 0 && layer < o.n_layers && head >= 0 && head < o.n_kv_heads);
  return slots_[static_cast<size_t>(layer) * static_cast<size_t>(o.n_kv_heads) +
                static_cast<size_t>(head)];
}

const KvCache::Slot& KvCache::slot(int layer, int head) const {
  const KvPoolOptions& o = pool_->options();
  PARETO_CHECK(layer >= 0 && layer < o.n_layers && head >= 0 && head < o.n_kv_heads);
  return slots_[static_cast<size_t>(layer) * static_cast<size_t>(o.n_kv_heads) +
                static_cast<size_t>(head)];
}

int KvCache::full_blocks() const {
  if (!pool_ || slots_.empty() || kivi()) return 0;
  const int e = pool_->options().page_entries;
  int blocks = n_tokens_ / e;
  for (const Slot& s : slots_) blocks = std::min(blocks, s.length / e);
  // A whole block holds positions b * e .. b * e + e - 1 in order; eviction or erasure would
  // break that, and then that block and those after it are not shareable.
  for (int b = 0; b < blocks; ++b) {
    for (const Slot& s : slots_) {
      const int32_t* pos = pool_->positions(s.pages[static_cast<size_t>(b)]);
      if (pos[0] != b * e || pos[e - 1] != b * e + e - 1) return b;
    }
  }
  return blocks;
}

void KvCache::block_pages(int block, std::span<KvPool::PageId> out) const {
  PARETO_CHECK(out.size() == slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    PARETO_CHECK(block >= 0 && static_cast<size_t>(block) < slots_[i].pages.size());
    out[i] = slots_[i].pages[static_cast<size_t>(block)];
  }
}

int KvCache::tail_entries() const {
  if (!pool_ || slots_.empty() || kivi()) return 0;
  const int e = pool_->options().page_entries;
  const int blocks = full_blocks();
  const int tail = n_tokens_ - blocks * e;
  if (tail <= 0 || tail >= e) return 0;
  for (const Slot& s : slots_) {
    if (s.length != n_tokens_ || s.pages.size() != static_cast<size_t>(blocks + 1)) return 0;
    const int32_t* pos = pool_->positions(s.pages.back());
    if (pos[0] != blocks * e || pos[tail - 1] != blocks * e + tail - 1) return 0;
  }
  return tail;
}

void KvCache::append_shared_block(std::span<const KvPool::PageId> pages, int entries) {
  PARETO_CHECK(pages.size() == slots_.size() && !kivi());
  const int e = pool_->options().page_entries;
  const int n = entries < 0 ? e : entries;
  const int length = slots_.empty() ? 0 : slots_.front().length;
  PARETO_CHECK_MSG(
      n >= 1 && n <= e && length % e == 0 && length == n_tokens_ && length + n <= capacity_,
      "append_shared_block needs whole blocks only and room for the entries");
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    PARETO_CHECK(s.length == length && s.pages.size() == static_cast<size_t>(length / e));
    pool_->retain(pages[i]);
    s.pages.push_back(pages[i]);
    s.length += n;
  }
  n_tokens_ += n;
}

int KvCache::length(int layer, int head) const {
  return slot(layer, head).length;
}

int32_t KvCache::position(int layer, int head, int entry) const {
  const Slot& s = slot(layer, head);
  PARETO_CHECK(entry >= 0 && entry < s.length);
  const int e = pool_->options().page_entries;
  return pool_->positions(s.pages[static_cast<size_t>(entry / e)])[entry % e];
}

void KvCache::own_page(Slot& s, size_t index) {
  const KvPool::PageId p = s.pages[index];
  if (pool_->refs(p) == 1) return;
  s.pages[index] = pool_->copy(p, pool_->options().page_entries);
  pool_->release(p);
}

Status KvCache::reserve(int n) {
  PARETO_CHECK(n >= 0);
  const int e = pool_->options().page_entries;
  int64_t needed = 0;
  for (const Slot& s : slots_) {
    if (int64_t{s.length} + n > capacity_) {
      return make_error_code(ErrorCode::kContextOverflow, "KV cache: ", s.length, " entries + ", n,
                             " new > the sequence's context of ", capacity_);
    }
    const int64_t pages = (int64_t{s.length} + n + e - 1) / e;
    needed += std::max<int64_t>(0, pages - static_cast<int64_t>(s.pages.size()));
    if (n > 0 && s.length % e != 0 && pool_->refs(s.pages[static_cast<size_t>(s.length / e)]) > 1) {
      ++needed;  // the shared partial page is copied before the first append to it
    }
  }
  if (!pool_->can_allocate(needed)) {
    return make_error_code(ErrorCode::kResourceExhausted, "KV cache: ", needed,
                           " more pages needed, the pool has ",
                           pool_->options().max_pages - pool_->pages_in_use(), " of ",
                           pool_->options().max_pages, " free");
  }
  if (kivi()) {
    const KvPoolOptions& o = pool_->options();
    const int behind = n_tokens_ - o.kivi_residual;
    const int32_t boundary = behind > 0 ? behind / o.kivi_group * o.kivi_group : 0;
    for (Slot& s : slots_) seal(s, boundary);
  }
  for (Slot& s : slots_) {
    if (n > 0 && s.length % e != 0) own_page(s, static_cast<size_t>(s.length / e));
    const size_t pages = static_cast<size_t>((s.length + n + e - 1) / e);
    while (s.pages.size() < pages) s.pages.push_back(pool_->allocate_unbounded());
  }
  return ok();
}

int KvCache::entries_in_one_view() const {
  if (!kivi()) return std::numeric_limits<int>::max();
  // reserve() at n_tokens m quantizes the positions below boundary(m) = (m - R) / G * G: it
  // first changes at the m > n_tokens with m - R a multiple of G (and m > R).
  const KvPoolOptions& o = pool_->options();
  const int r = o.kivi_residual, g = o.kivi_group;
  int next = std::max(n_tokens_ + 1, r + g);
  next += ((r - next) % g + g) % g;  // up to the next m with (m - R) % G == 0
  return next - n_tokens_;
}

void KvCache::append(int layer, int head, int32_t position, const float* key, const float* value) {
  Slot& s = slot(layer, head);
  const KvPoolOptions& o = pool_->options();
  const int e = o.page_entries;
  const auto index = static_cast<size_t>(s.length / e);
  PARETO_CHECK_MSG(s.length < capacity_ && index < s.pages.size(),
                   "KvCache::append without reserve");
  const KvPool::PageId p = s.pages[index];
  PARETO_CHECK_MSG(pool_->refs(p) == 1, "KvCache::append to a shared page without reserve");
  const int at = s.length % e;
  const auto hd = static_cast<size_t>(o.head_dim);
  // KIVI parts wait in f16 until their group is quantized (seal).
  const auto recent = [&](std::vector<uint16_t>& to, const float* v) {
    to.resize(to.size() + hd);
    kv_encode(KvType::kF16, v, reinterpret_cast<uint8_t*>(to.data() + to.size() - hd), o.head_dim);
  };
  if (kivi_bits(o.key_type)) {
    recent(s.recent_keys, key);
  } else {
    kv_encode(o.key_type, key, pool_->key(p, at), o.head_dim);
  }
  if (kivi_bits(o.value_type)) {
    recent(s.recent_values, value);
  } else {
    kv_encode(o.value_type, value, pool_->value(p, at), o.head_dim);
  }
  pool_->positions(p)[at] = position;
  ++s.length;
}

void KvCache::gather_range(int layer, int head, int begin, int end, float* keys, float* values,
                           int32_t* positions) const {
  const Slot& s = slot(layer, head);
  PARETO_CHECK(begin >= 0 && begin <= end && end <= s.length);
  const KvPoolOptions& o = pool_->options();
  const int e = o.page_entries;
  const auto hd = static_cast<size_t>(o.head_dim);
  for (int j = begin; j < end;) {
    const KvPool::PageId p = s.pages[static_cast<size_t>(j / e)];
    const int first = j % e;
    const int last = std::min(e, first + (end - j));
    // A page's entries are consecutive whole rows (quantized ones whole blocks): one call each.
    const auto out = static_cast<size_t>(j - begin);
    const int count = last - first;
    if (keys && !kivi_bits(o.key_type)) {
      kv_decode(o.key_type, pool_->key(p, first), keys + out * hd, count * o.head_dim);
    }
    if (values && !kivi_bits(o.value_type)) {
      kv_decode(o.value_type, pool_->value(p, first), values + out * hd, count * o.head_dim);
    }
    if (positions) std::copy_n(pool_->positions(p) + first, count, positions + out);
    j += count;
  }
  if (kivi()) gather_kivi(s, begin, end, keys, values);
}

void KvCache::gather(int layer, int head, float* keys, float* values, int32_t* positions) const {
  gather_range(layer, head, 0, slot(layer, head).length, keys, values, positions);
}

template <class Keep>
void KvCache::compact(Slot& s, Keep keep) {
  const KvPoolOptions& o = pool_->options();
  const int e = o.page_entries;
  // keep() is called once per entry, in order (erase's keep walks its indices alongside). A KIVI
  // cache also notes which recent entries stay (their f16 rows follow them) and how many quantized
  // ones go.
  const bool kivi_parts = kivi();
  const int sealed = s.sealed;
  int sealed_dropped = 0;
  std::vector<char> recent_kept;
  const auto keeps = [&](int j) {
    const bool k = keep(j);
    if (kivi_parts) {
      if (j < sealed) {
        sealed_dropped += k ? 0 : 1;
      } else {
        recent_kept.push_back(k ? 1 : 0);
      }
    }
    return k;
  };
  int first = 0;
  while (first < s.length && keeps(first)) ++first;
  if (first == s.length) return;
  int w = first;
  for (int r = first + 1; r < s.length; ++r) {
    if (!keeps(r)) continue;
    const auto wi = static_cast<size_t>(w / e);
    own_page(s, wi);
    const KvPool::PageId dst = s.pages[wi];
    const KvPool::PageId src = s.pages[static_cast<size_t>(r / e)];
    std::memcpy(pool_->key(dst, w % e), pool_->key(src, r % e), pool_->key_bytes());
    std::memcpy(pool_->value(dst, w % e), pool_->value(src, r % e), pool_->value_bytes());
    pool_->positions(dst)[w % e] = pool_->positions(src)[r % e];
    ++w;
  }
  if (kivi_parts) {
    const auto hd = static_cast<size_t>(o.head_dim);
    const auto keep_rows = [&](std::vector<uint16_t>& rows) {
      if (rows.empty()) return;
      size_t to = 0;
      for (size_t i = 0; i < recent_kept.size(); ++i) {
        if (!recent_kept[i]) continue;
        if (to != i * hd) {
          std::copy_n(rows.begin() + static_cast<std::ptrdiff_t>(i * hd), hd,
                      rows.begin() + static_cast<std::ptrdiff_t>(to));
        }
        to += hd;
      }
      rows.resize(to);
    };
    keep_rows(s.recent_keys);
    keep_rows(s.recent_values);
    s.sealed = sealed - sealed_dropped;
  }
  s.length = w;
  const auto pages = static_cast<size_t>((w + e - 1) / e);
  while (s.pages.size() > pages) {
    pool_->release(s.pages.back());
    s.pages.pop_back();
  }
  if (sealed_dropped > 0 && !s.key_groups.empty()) {
    // Key groups shrink to the positions still held; empty ones go (a rollback of recent entries
    // leaves them as they are).
    std::vector<KeyGroup> groups;
    size_t g = 0;
    for (int j = 0; j < s.sealed; ++j) {
      const int32_t p = pool_->positions(s.pages[static_cast<size_t>(j / e)])[j % e];
      while (g < s.key_groups.size() && s.key_groups[g].last < p) ++g;
      PARETO_CHECK(g < s.key_groups.size() && s.key_groups[g].first <= p);
      if (groups.empty() || groups.back().params != s.key_groups[g].params) {
        groups.push_back({p, p, s.key_groups[g].params});
      } else {
        groups.back().last = p;
      }
    }
    s.key_groups = std::move(groups);
  }
}

void KvCache::truncate(int n_tokens) {
  PARETO_CHECK(n_tokens >= 0);
  if (!pool_) return;
  const int e = pool_->options().page_entries;
  // The first entry at position n_tokens or later, and whether every entry after it goes too,
  // page by page over the positions (a rollback runs this per layer and head at every
  // verification: no call per entry).
  const auto first_dropped = [&](const Slot& s) {
    for (int base = 0; base < s.length; base += e) {
      const int32_t* pos = pool_->positions(s.pages[static_cast<size_t>(base / e)]);
      const int count = std::min(e, s.length - base);
      const int32_t* at = std::find_if(pos, pos + count, [&](int32_t p) { return p >= n_tokens; });
      if (at != pos + count) return base + static_cast<int>(at - pos);
    }
    return s.length;
  };
  const auto all_dropped_from = [&](const Slot& s, int first) {
    for (int base = first / e * e; base < s.length; base += e) {
      const int32_t* pos = pool_->positions(s.pages[static_cast<size_t>(base / e)]);
      const int from = std::max(first - base, 0);
      const int count = std::min(e, s.length - base);
      if (!std::all_of(pos + from, pos + count, [&](int32_t p) { return p >= n_tokens; })) {
        return false;
      }
    }
    return true;
  };
  for (Slot& s : slots_) {
    const int first = first_dropped(s);
    if (first == s.length) continue;
    if (!kivi() && all_dropped_from(s, first)) {
      // A tail (the usual rollback): shorten; the pages past the new end go back to the pool.
      s.length = first;
      const auto pages = static_cast<size_t>((first + e - 1) / e);
      while (s.pages.size() > pages) {
        pool_->release(s.pages.back());
        s.pages.pop_back();
      }
      continue;
    }
    compact(s, [&](int j) {
      return pool_->positions(s.pages[static_cast<size_t>(j / e)])[j % e] < n_tokens;
    });
  }
  n_tokens_ = std::min(n_tokens_, n_tokens);
}

void KvCache::erase(int layer, int head, std::span<const int> indices) {
  Slot& s = slot(layer, head);
  for (size_t i = 0; i < indices.size(); ++i) {
    PARETO_CHECK(indices[i] >= 0 && indices[i] < s.length);
    PARETO_CHECK(i == 0 || indices[i] > indices[i - 1]);
  }
  size_t next = 0;  // entries are visited in ascending order by compact
  compact(s, [&](int j) {
    if (next < indices.size() && indices[next] == j) {
      ++next;
      return false;
    }
    return true;
  });
}

void KvCache::append_encoded(Slot& s, const uint8_t* key, const uint8_t* value, int32_t position) {
  const int e = pool_->options().page_entries;
  if (s.length % e == 0) {
    s.pages.push_back(pool_->allocate_unbounded());
  } else {
    own_page(s, static_cast<size_t>(s.length / e));
  }
  const KvPool::PageId p = s.pages.back();
  const int at = s.length % e;
  std::memcpy(pool_->key(p, at), key, pool_->key_bytes());
  std::memcpy(pool_->value(p, at), value, pool_->value_bytes());
  pool_->positions(p)[at] = position;
  ++s.length;
}

void KvCache::copy_entries(int layer, int head, std::span<const int> indices, KvCache& to) const {
  PARETO_CHECK_MSG(to.pool_ == pool_, "KvCache::copy_entries: the caches must share a pool");
  const Slot& s = slot(layer, head);
  Slot& t = to.slot(layer, head);
  const int e = pool_->options().page_entries;
  size_t group = 0;  // KIVI: the key group of the last quantized entry copied (they ascend)
  for (size_t i = 0; i < indices.size(); ++i) {
    const int j = indices[i];
    PARETO_CHECK(j >= 0 && j < s.length && (i == 0 || j > indices[i - 1]));
    const KvPool::PageId p = s.pages[static_cast<size_t>(j / e)];
    to.append_encoded(t, pool_->key(p, j % e), pool_->value(p, j % e), pool_->positions(p)[j % e]);
    if (kivi()) copy_kivi_parts(s, j, t, group);
  }
}

void KvCache::clear() {
  if (!pool_) return;
  release_all();
  n_tokens_ = 0;
}

int64_t KvCache::pages_held() const {
  int64_t n = 0;
  for (const Slot& s : slots_) n += static_cast<int64_t>(s.pages.size());
  return n;
}

int64_t KvCache::bytes_held(std::span<const KvCache* const> caches) {
  std::set<std::pair<const KvPool*, KvPool::PageId>> pages;
  std::set<const void*> params;
  int64_t bytes = 0;
  for (const KvCache* c : caches) {
    if (c == nullptr || !c->pool_) continue;
    const KvPool* pool = c->pool_.get();
    const auto group_bytes = static_cast<int64_t>(2 * sizeof(uint16_t)) * pool->options().head_dim;
    for (const Slot& s : c->slots_) {
      for (const KvPool::PageId p : s.pages) {
        if (pages.emplace(pool, p).second) bytes += static_cast<int64_t>(pool->page_bytes());
      }
      bytes +=
          static_cast<int64_t>((s.recent_keys.size() + s.recent_values.size()) * sizeof(uint16_t));
      for (const KeyGroup& g : s.key_groups) {
        if (params.insert(g.params.get()).second) bytes += group_bytes;
      }
    }
  }
  return bytes;
}

int64_t KvCache::bytes_held() const {
  if (!pool_) return 0;
  int64_t bytes = pages_held() * static_cast<int64_t>(pool_->page_bytes());
  const auto params = static_cast<int64_t>(2 * sizeof(uint16_t)) * pool_->options().head_dim;
  for (const Slot& s : slots_) {
    bytes +=
        static_cast<int64_t>((s.recent_keys.size() + s.recent_values.size()) * sizeof(uint16_t)) +
        static_cast<int64_t>(s.key_groups.size()) * params;
  }
  return bytes;
}

}  // namespace pareto::kv
