// KvCache: one sequence's keys and values, as page tables into a shared KvPool (kv_pool.h). Each
// (layer, KV head) has its own list of pages, so entries can be evicted per layer and head (the
// KV-budget policies) and lengths may differ between them. Every entry keeps the position it was
// computed at (keys are stored after RoPE), so rollback filters by position, not by count.
//
// fork() shares every page with the new cache (a prefix cache, the branches of a token tree); a
// page is copied on the first write to it while shared (copy-on-write). Pages return to the pool
// when the last cache holding them lets go.
//
// Shapes: gather(layer, head) decodes [length, head_dim] f32 keys and values and [length]
// positions, in entry order (append order, minus erased entries).
//
// KIVI types (kv_kivi.h): an entry's KIVI parts are kept in f16 beside the pages ("recent") and
// quantized into its page once its group of kivi_group positions lies wholly kivi_residual
// positions behind n_tokens(), at the next reserve() (so what is quantized depends only on the
// tokens before the forward: the entries a verification appends, at n_tokens() and beyond, never
// are; a draft model's own cache, which drafts one forward per token, may quantize a draft it later
// rolls back: that changes its drafts, not the target's output). Keys are quantized with their
// group's per-channel parameters, found by position: entries still move byte for byte on eviction.
// Such caches share no blocks with the prefix cache (full_blocks() is 0).
//
// Not thread-safe (nor is the pool it shares): one thread, the engine's step loop, uses them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/result.h"
#include "kv/kv_pool.h"

namespace pareto::kv {

struct KvShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int capacity = 0;  // max entries per (layer, head): the sequence's context
};

class KvCache {
 public:
  KvCache() = default;
  // A sequence of up to `capacity` entries per (layer, head) in `pool`.
  KvCache(std::shared_ptr<KvPool> pool, int capacity);
  // A cache with its own unbounded pool (tests, benchmarks, one-off sequences).
  explicit KvCache(const KvShape& shape, KvType key_type = KvType::kF32,
                   KvType value_type = KvType::kF32);
  ~KvCache();
  KvCache(KvCache&& other) noexcept;
  KvCache& operator=(KvCache&& other) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // A new cache holding the same entries, sharing every page (no copy until one side writes).
  KvCache fork() const;
  // An empty cache of the same pool and capacity.
  KvCache empty_like() const { return KvCache(pool_, capacity_); }

  KvShape shape() const;
  const KvPool& pool() const { return *pool_; }
  bool valid() const { return pool_ != nullptr; }
  // The next position of the sequence: one past the highest position appended (rollbacks lower
  // it). Independent of evictions.
  int n_tokens() const { return n_tokens_; }
  int capacity() const { return capacity_; }
  void set_n_tokens(int n);

  // Stored entries of (layer, head).
  int length(int layer, int head) const;
  int32_t position(int layer, int head, int entry) const;

  // Makes room to append `n` entries to every (layer, head): allocates pages and copies a shared
  // last page. With KIVI types it first quantizes the entries whose group has left the recent
  // window. Errors, with nothing changed: kContextOverflow beyond capacity, kResourceExhausted
  // when the pool has no pages left.
  Status reserve(int n);
  // How many entries at positions n_tokens() onwards one forward may append while its queries see
  // the cache as one forward per token would: unlimited (INT_MAX) but for KIVI types, whose next
  // reserve() may quantize a group; then up to the first position whose own reserve would (>= 1).
  int entries_in_one_view() const;
  // Appends one entry (head_dim floats each, encoded in the pool's types). CHECKs that reserve
  // made room.
  void append(int layer, int head, int32_t position, const float* key, const float* value);

  // Decodes (layer, head)'s entries into keys, values [length, head_dim] and positions [length].
  // A null keys, values or positions pointer skips that part (a caller that needs only keys does
  // not pay for decoding values).
  void gather(int layer, int head, float* keys, float* values, int32_t* positions) const;
  // Decodes entries [begin, end) of (layer, head) (offsets relative to begin).
  void gather_range(int layer, int head, int begin, int end, float* keys, float* values,
                    int32_t* positions) const;

  // Drops every entry whose position is >= n_tokens, in all layers and heads; n_tokens() becomes
  // n_tokens (if lower).
  void truncate(int n_tokens);
  // Removes entries of (layer, head) by index (ascending, unique); the others keep their order.
  void erase(int layer, int head, std::span<const int> indices);
  // Appends entries of (layer, head) by index (ascending, unique) to `to`'s (layer, head), their
  // encoded bytes and positions unchanged (RefreshKV's small cache is a copy of the chosen
  // entries). `to` must share this cache's pool; its pages are allocated past the pool's limit if
  // need be.
  void copy_entries(int layer, int head, std::span<const int> indices, KvCache& to) const;
  // Removes every entry and returns the pages.
  void clear();

  // Prefix sharing by whole pages (kv/prefix_cache.h). Block b is page b of every (layer, head):
  // entries [b * page_entries, (b + 1) * page_entries), at those positions, while no entry was
  // evicted or erased. full_blocks(): how many leading blocks are complete and in that shape.
  int full_blocks() const;
  // Entries of the incomplete block after full_blocks() whole ones (0 when there is none, or it
  // is not in block shape: positions full_blocks() * page_entries onwards, in order).
  int tail_entries() const;
  // Page b of every (layer, head), in slot order (layer-major), for block_pages.size() == slots.
  void block_pages(int block, std::span<KvPool::PageId> out) const;
  // Appends the first `entries` entries (1..page_entries; -1: all) of one shared block: page
  // `pages[i]` becomes the next page of slot i (retained, never written: a whole block's next
  // append starts a new page, a partial one's copies the page first). CHECKs that every slot holds
  // whole blocks only, all the same count, and that the entries fit the capacity.
  void append_shared_block(std::span<const KvPool::PageId> pages, int entries = -1);
  int n_slots() const { return static_cast<int>(slots_.size()); }

  // The pages of (layer, head), in entry order (tests, accounting).
  std::span<const KvPool::PageId> pages(int layer, int head) const {
    return slot(layer, head).pages;
  }
  // Pages this cache references (shared ones included) and their bytes, plus (KIVI) the recent
  // entries' f16 copies and the key groups' parameters.
  int64_t pages_held() const;
  int64_t bytes_held() const;
  // The bytes of several caches together, each page and each KIVI parameter block they share
  // (forks, refresh's small copy beside the whole cache) counted once.
  static int64_t bytes_held(std::span<const KvCache* const> caches);
  // Leading entries of (layer, head) whose KIVI parts are quantized (0 for other types).
  int quantized(int layer, int head) const { return slot(layer, head).sealed; }

 private:
  // KIVI key parameters of the entries at positions [first, last] (one group of positions, or
  // what eviction left of it): [2 * head_dim] f16, shared by forks.
  struct KeyGroup {
    int32_t first = 0;
    int32_t last = 0;
    std::shared_ptr<const std::vector<uint16_t>> params;
  };
  struct Slot {
    std::vector<KvPool::PageId> pages;
    int length = 0;
    // KIVI only: entries [0, sealed) are quantized in their pages; the KIVI parts of entries
    // [sealed, length) are here in f16, [length - sealed, head_dim] each.
    int sealed = 0;
    std::vector<uint16_t> recent_keys;
    std::vector<uint16_t> recent_values;
    std::vector<KeyGroup> key_groups;  // ascending, disjoint
  };
  Slot& slot(int layer, int head);
  const Slot& slot(int layer, int head) const;
  // Makes page `index` of `s` private (copies it when shared).
  void own_page(Slot& s, size_t index);
  // Appends one encoded entry to `s` (a new page when the last is full; copy-on-write).
  void append_encoded(Slot& s, const uint8_t* key, const uint8_t* value, int32_t position);
  // Keeps entries for which keep(entry index) holds, compacting in order.
  template <class Keep>
  void compact(Slot& s, Keep keep);
  bool kivi() const;
  // Quantizes the KIVI parts of `s`'s recent entries at positions below `boundary`.
  void seal(Slot& s, int32_t boundary);
  // Decodes the KIVI parts of entries [begin, end) of `s` (see gather_range).
  void gather_kivi(const Slot& s, int begin, int end, float* keys, float* values) const;
  // copy_entries' part for KIVI: entry j of `s`, just appended to `t` as its bytes; `group`: a
  // cursor into s's key groups, advanced as the entries ascend.
  void copy_kivi_parts(const Slot& s, int j, Slot& t, size_t& group) const;
  void release_all();

  std::shared_ptr<KvPool> pool_;
  int capacity_ = 0;
  int n_tokens_ = 0;
  std::vector<Slot> slots_;  // [n_layers * n_kv_heads]
};

}  // namespace pareto::kv
