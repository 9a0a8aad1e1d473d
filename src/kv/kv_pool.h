// KvPool: one pool of fixed-size pages shared by every sequence of a model. A page holds up to
// `page_entries` entries of one (layer, KV head) of one sequence: their keys, values (each in its
// storage type, kv_type.h) and positions. Pages are reference counted: a fork shares them, and
// the first write to a shared page copies it (KvCache). Pages are created as they are first
// needed and reused after release, so memory follows the tokens actually held.
//
// Not thread-safe: the engine's step loop owns the pool (one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_type.h"

namespace pareto::kv {

struct KvPoolOptions {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  KvType key_type = KvType::kF32;
  KvType value_type = KvType::kF32;
  int page_entries = 16;  // entries per page
  // Pages the pool may hold at once; 0: no limit. Appends beyond it fail (KvCache::reserve);
  // copy-on-write during erase may exceed it by the pages it copies.
  int64_t max_pages = 0;
  // KIVI types (kv_kivi.h): keys are quantized per channel over groups of `kivi_group` positions;
  // entries stay in f16 (outside the pages, KvCache) until their whole group is at least
  // `kivi_residual` positions behind the sequence's next one. The paper's defaults.
  int kivi_group = 32;
  int kivi_residual = 128;
};

class KvPool {
 public:
  using PageId = int32_t;

  explicit KvPool(const KvPoolOptions& options);
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  const KvPoolOptions& options() const { return options_; }
  size_t key_bytes() const { return key_bytes_; }      // one encoded key
  size_t value_bytes() const { return value_bytes_; }  // one encoded value
  size_t page_bytes() const { return page_bytes_; }

  // A fresh page with one reference, or -1 when max_pages are in use.
  PageId allocate();
  // A fresh page regardless of max_pages (copy-on-write needs one to stay consistent).
  PageId allocate_unbounded();
  void retain(PageId page);
  void release(PageId page);
  int refs(PageId page) const;
  // A new page with one reference holding a copy of `page`'s first `n` entries.
  PageId copy(PageId page, int n);

  uint8_t* key(PageId page, int slot);
  uint8_t* value(PageId page, int slot);
  int32_t* positions(PageId page);  // [page_entries]
  const uint8_t* key(PageId page, int slot) const;
  const uint8_t* value(PageId page, int slot) const;
  const int32_t* positions(PageId page) const;

  int64_t pages_in_use() const { return in_use_; }
  int64_t pages_created() const { return static_cast<int64_t>(pages_.size()); }
  int64_t bytes_in_use() const { return in_use_ * static_cast<int64_t>(page_bytes_); }
  // Whether `n` more pages can be allocated now.
  bool can_allocate(int64_t n) const;

 private:
  uint8_t* base(PageId page);
  const uint8_t* base(PageId page) const;

  KvPoolOptions options_;
  size_t key_bytes_ = 0;
  size_t value_bytes_ = 0;
  size_t positions_offset_ = 0;  // rounded up to int32 alignment
  size_t page_bytes_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> pages_;
  std::vector<int32_t> refs_;
  std::vector<PageId> free_;
  int64_t in_use_ = 0;
};

}  // namespace pareto::kv
