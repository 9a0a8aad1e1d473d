#include "kv/kv_pool.h"

#include <cstring>

#include "base/check.h"

namespace pareto::kv {

KvPool::KvPool(const KvPoolOptions& options) : options_(options) {
  PARETO_CHECK(options.n_layers >= 0 && options.n_kv_heads >= 0 && options.head_dim >= 0);
  PARETO_CHECK(options.page_entries > 0 && options.max_pages >= 0);
  PARETO_CHECK(options.kivi_group > 0 && options.kivi_residual >= 0);
  key_bytes_ = kv_key_bytes(options.key_type, options.head_dim);
  value_bytes_ = kv_value_bytes(options.value_type, options.head_dim);
  const auto e = static_cast<size_t>(options.page_entries);
  positions_offset_ = (e * (key_bytes_ + value_bytes_) + 3) / 4 * 4;
  page_bytes_ = positions_offset_ + e * sizeof(int32_t);
}

bool KvPool::can_allocate(int64_t n) const {
  return options_.max_pages == 0 || in_use_ + n <= options_.max_pages;
}

KvPool::PageId KvPool::allocate() {
  if (!can_allocate(1)) return -1;
  return allocate_unbounded();
}

KvPool::PageId KvPool::allocate_unbounded() {
  PageId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<PageId>(pages_.size());
    pages_.push_back(std::make_unique<uint8_t[]>(page_bytes_));
    refs_.push_back(0);
  }
  refs_[static_cast<size_t>(id)] = 1;
  ++in_use_;
  return id;
}

void KvPool::retain(PageId page) {
  PARETO_CHECK(page >= 0 && page < static_cast<PageId>(refs_.size()) && refs_[page] > 0);
  ++refs_[static_cast<size_t>(page)];
}

void KvPool::release(PageId page) {
  PARETO_CHECK(page >= 0 && page < static_cast<PageId>(refs_.size()) && refs_[page] > 0);
  if (--refs_[static_cast<size_t>(page)] == 0) {
    free_.push_back(page);
    --in_use_;
  }
}

int KvPool::refs(PageId page) const {
  PARETO_CHECK(page >= 0 && page < static_cast<PageId>(refs_.size()));
  return refs_[static_cast<size_t>(page)];
}

KvPool::PageId KvPool::copy(PageId page, int n) {
  PARETO_CHECK(n >= 0 && n <= options_.page_entries);
  const PageId fresh = allocate_unbounded();
  const auto count = static_cast<size_t>(n);
  std::memcpy(key(fresh, 0), key(page, 0), count * key_bytes_);
  std::memcpy(value(fresh, 0), value(page, 0), count * value_bytes_);
  std::memcpy(positions(fresh), positions(page), count * sizeof(int32_t));
  return fresh;
}

uint8_t* KvPool::base(PageId page) {
  PARETO_CHECK(page >= 0 && page < static_cast<PageId>(pages_.size()));
  return pages_[static_cast<size_t>(page)].get();
}

const uint8_t* KvPool::base(PageId page) const {
  PARETO_CHECK(page >= 0 && page < static_cast<PageId>(pages_.size()));
  return pages_[static_cast<size_t>(page)].get();
}

uint8_t* KvPool::key(PageId page, int slot) {
  return base(page) + static_cast<size_t>(slot) * key_bytes_;
}

uint8_t* KvPool::value(PageId page, int slot) {
  const auto e = static_cast<size_t>(options_.page_entries);
  return base(page) + e * key_bytes_ + static_cast<size_t>(slot) * value_bytes_;
}

int32_t* KvPool::positions(PageId page) {
  return reinterpret_cast<int32_t*>(base(page) + positions_offset_);
}

const uint8_t* KvPool::key(PageId page, int slot) const {
  return base(page) + static_cast<size_t>(slot) * key_bytes_;
}

const uint8_t* KvPool::value(PageId page, int slot) const {
  const auto e = static_cast<size_t>(options_.page_entries);
  return base(page) + e * key_bytes_ + static_cast<size_t>(slot) * value_bytes_;
}

const int32_t* KvPool::positions(PageId page) const {
  return reinterpret_cast<const int32_t*>(base(page) + positions_offset_);
}

}  // namespace pareto::kv
