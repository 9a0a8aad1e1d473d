#include "kv/prefix_cache.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <utility>

#include "base/check.h"

namespace pareto::kv {

struct PrefixCache::Node {
  std::vector<int32_t> key;           // the block's tokens
  std::vector<KvPool::PageId> pages;  // the block's page in every slot (layer-major)
  Node* parent = nullptr;
  std::map<std::vector<int32_t>, std::unique_ptr<Node>> children;
  int pins = 0;  // running sequences using this block
  uint64_t last_used = 0;
};

PrefixCache::PrefixCache(std::shared_ptr<KvPool> pool, int64_t max_pages)
    : pool_(std::move(pool)), max_pages_(max_pages), root_(std::make_unique<Node>()) {
  PARETO_CHECK(pool_ != nullptr && max_pages >= 0);
  const KvPoolOptions& o = pool_->options();
  page_entries_ = o.page_entries;
  pages_per_block_ = int64_t{o.n_layers} * o.n_kv_heads;
}

PrefixCache::~PrefixCache() {
  // Iteratively, deepest first: a long chain of blocks must not recurse once per block.
  std::vector<Node*> stack = {root_.get()};
  std::vector<Node*> order;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (auto& [key, child] : n->children) stack.push_back(child.get());
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    for (KvPool::PageId p : (*it)->pages) pool_->release(p);
    (*it)->pages.clear();
    (*it)->children.clear();  // children are already empty of pages and grandchildren
  }
}

int PrefixCache::attach(std::span<const int32_t> tokens, int max_tokens, KvCache& cache,
                        Lease& lease) {
  PARETO_CHECK_MSG(cache.n_tokens() == 0, "PrefixCache::attach needs an empty cache");
  const int e = page_entries_;
  const int limit = std::min({max_tokens, static_cast<int>(tokens.size()), cache.capacity()});
  Node* node = root_.get();
  int n = 0;
  std::vector<int32_t> key(static_cast<size_t>(e));
  while (n + e <= limit) {
    std::copy(tokens.begin() + n, tokens.begin() + n + e, key.begin());
    const auto it = node->children.find(key);
    if (it == node->children.end()) break;
    Node* child = it->second.get();
    cache.append_shared_block(child->pages);
    if (child->pins++ == 0) --unpinned_nodes_;
    child->last_used = ++clock_;
    lease.nodes.push_back(child);
    node = child;
    n += e;
  }
  // Token granularity for the rest: the child (a whole block or a partial one) sharing the
  // longest run of the next tokens lends that many entries; the sequence's first append copies
  // the page (copy-on-write), so the shared block stays as it was.
  Node* best = nullptr;
  int best_n = 0;
  const std::span<const int32_t> next = tokens.subspan(
      static_cast<size_t>(n), static_cast<size_t>(std::min(e, std::max(limit - n, 0))));
  for (auto& [child_key, child] : node->children) {
    const size_t m = std::min(child_key.size(), next.size());
    const auto common =
        static_cast<int>(std::mismatch(next.begin(), next.begin() + static_cast<std::ptrdiff_t>(m),
                                       child_key.begin())
                             .first -
                         next.begin());
    if (common > best_n) {
      best = child.get();
      best_n = common;
    }
  }
  if (best != nullptr) {
    cache.append_shared_block(best->pages, best_n);
    if (best->pins++ == 0) --unpinned_nodes_;
    best->last_used = ++clock_;
    lease.nodes.push_back(best);
    n += best_n;
  }
  hit_tokens_ += n;
  return n;
}

void PrefixCache::release(Lease& lease) {
  for (Node* n : lease.nodes) {
    PARETO_CHECK(n->pins > 0);
    if (--n->pins == 0) ++unpinned_nodes_;
  }
  lease.nodes.clear();
}

void PrefixCache::insert(std::span<const int32_t> tokens, const KvCache& cache) {
  const int e = page_entries_;
  const int blocks = std::min(cache.full_blocks(), static_cast<int>(tokens.size()) / e);
  std::vector<Node*> path;  // pinned while inserting, so the cache's own limit cannot evict it
  Node* node = root_.get();
  std::vector<int32_t> key(static_cast<size_t>(e));
  for (int b = 0; b < blocks; ++b) {
    std::copy(tokens.begin() + b * e, tokens.begin() + (b + 1) * e, key.begin());
    auto it = node->children.find(key);
    if (it == node->children.end()) {
      if (!make_block_room()) break;
      auto child = std::make_unique<Node>();
      child->key = key;
      child->parent = node;
      child->pages.resize(static_cast<size_t>(cache.n_slots()));
      cache.block_pages(b, child->pages);
      for (KvPool::PageId p : child->pages) pool_->retain(p);
      ++n_nodes_;
      ++unpinned_nodes_;
      it = node->children.emplace(key, std::move(child)).first;
    }
    Node* child = it->second.get();
    child->last_used = ++clock_;
    if (child->pins++ == 0) --unpinned_nodes_;
    path.push_back(child);
    drop_covered_partials(node, key);
    node = child;
  }
  // The incomplete last block, as a partial leaf, unless a sibling already holds its tokens.
  const int tail = static_cast<int>(path.size()) == cache.full_blocks() ? cache.tail_entries() : 0;
  const int start = static_cast<int>(path.size()) * e;
  if (tail > 0 && start + tail <= static_cast<int>(tokens.size())) {
    const std::vector<int32_t> part(tokens.begin() + start, tokens.begin() + start + tail);
    Node* covering = nullptr;
    for (auto& [child_key, child] : node->children) {
      if (child_key.size() >= part.size() &&
          std::equal(part.begin(), part.end(), child_key.begin())) {
        covering = child.get();
        break;
      }
    }
    if (covering != nullptr) {
      covering->last_used = ++clock_;
    } else if (make_block_room()) {
      drop_covered_partials(node, part);
      auto child = std::make_unique<Node>();
      child->key = part;
      child->parent = node;
      child->pages.resize(static_cast<size_t>(cache.n_slots()));
      cache.block_pages(static_cast<int>(path.size()), child->pages);
      for (KvPool::PageId p : child->pages) pool_->retain(p);
      child->last_used = ++clock_;
      ++n_nodes_;
      ++unpinned_nodes_;
      node->children.emplace(part, std::move(child));
    }
  }
  Lease pinned{std::move(path)};
  release(pinned);
}

bool PrefixCache::make_block_room() {
  while (max_pages_ > 0 && pages_held() + pages_per_block_ > max_pages_) {
    Node* victim = lru_leaf();
    if (!victim) return false;
    evict(victim);
  }
  return true;
}

void PrefixCache::drop_covered_partials(Node* parent, const std::vector<int32_t>& tokens) {
  // Partial leaves whose tokens start `tokens` are covered by it: any request they would serve,
  // the longer block serves as well.
  for (auto it = parent->children.begin(); it != parent->children.end();) {
    Node* c = it->second.get();
    const bool covered = c->key.size() < tokens.size() && c->pins == 0 &&
                         std::equal(c->key.begin(), c->key.end(), tokens.begin());
    ++it;  // evict() erases c from the map
    if (covered) evict(c);
  }
}

PrefixCache::Node* PrefixCache::lru_leaf() const {
  Node* best = nullptr;
  std::vector<Node*> stack = {root_.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n != root_.get() && n->children.empty() && n->pins == 0 &&
        (!best || n->last_used < best->last_used)) {
      best = n;
    }
    for (auto& [key, child] : n->children) stack.push_back(child.get());
  }
  return best;
}

void PrefixCache::evict(Node* node) {
  PARETO_CHECK(node && node != root_.get() && node->children.empty() && node->pins == 0);
  for (KvPool::PageId p : node->pages) pool_->release(p);
  --n_nodes_;
  --unpinned_nodes_;
  node->parent->children.erase(node->key);  // destroys node
}

bool PrefixCache::make_room(int64_t pages) {
  if (pool_->can_allocate(pages)) return true;
  // The evictable leaves, least recently used on top, found in one pass; a parent joins them
  // when its last child goes (the order of repeated lru_leaf() calls, without a scan each).
  using Item = std::pair<uint64_t, Node*>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> leaves;
  std::vector<Node*> stack = {root_.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n != root_.get() && n->children.empty() && n->pins == 0) leaves.emplace(n->last_used, n);
    for (auto& [key, child] : n->children) stack.push_back(child.get());
  }
  while (!pool_->can_allocate(pages)) {
    if (leaves.empty()) return false;
    Node* victim = leaves.top().second;
    leaves.pop();
    Node* parent = victim->parent;
    evict(victim);
    if (parent != root_.get() && parent->children.empty() && parent->pins == 0) {
      leaves.emplace(parent->last_used, parent);
    }
  }
  return true;
}

}  // namespace pareto::kv
