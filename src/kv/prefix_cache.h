// PrefixCache: KV pages of finished sequences kept for later requests that start with the same
// tokens (a system prompt, a chat history), shared by every sequence of one pool (SGLang's
// RadixAttention idea, at page granularity as vLLM's automatic prefix caching).
//
// A trie of blocks: each node is one block of page_entries tokens, holding that block's page of
// every (layer, KV head) slot; a finished sequence's incomplete last block is a partial leaf. A
// new sequence takes the longest cached run of whole blocks that matches its prompt (pages shared
// by reference count, nothing copied), then, at token granularity, the longest match among the
// next node's children (its page shared and copied on the sequence's first write to it), and
// evaluates only the rest. Blocks in use by a running sequence are pinned; the others are evicted
// least recently used first (leaves first, so a kept block's prefix is kept too) when the pool
// runs short or the cache passes its own limit.
//
// Exact reuse: a block's keys and values are what a cold evaluation of the same tokens at the
// same positions stores (the same in batch-invariant mode bit for bit; otherwise up to the
// summation order of the batch they were computed in, as llama.cpp's prompt cache).
//
// Not thread-safe: the engine's step thread owns it (as the pool).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_pool.h"

namespace pareto::kv {

class PrefixCache {
 public:
  struct Node;
  // max_pages: the most pages the cache keeps for itself (0: bounded by the pool only).
  PrefixCache(std::shared_ptr<KvPool> pool, int64_t max_pages);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // A handle on the blocks a sequence took: they stay pinned until release().
  struct Lease {
    std::vector<Node*> nodes;
  };

  // Puts the longest cached prefix of `tokens` into the empty `cache` (at most max_tokens
  // tokens) and pins it. Returns the tokens reused.
  int attach(std::span<const int32_t> tokens, int max_tokens, KvCache& cache, Lease& lease);
  // Unpins what attach() pinned.
  void release(Lease& lease);
  // Adds the whole blocks of a finished sequence (tokens[i] is the token at position i; the
  // cache holds at least its first full_blocks() blocks) and its incomplete last block, and marks
  // them recently used.
  void insert(std::span<const int32_t> tokens, const KvCache& cache);
  // Evicts unpinned blocks, least recently used first, until `pages` pages are free in the pool
  // (or nothing is left to evict). Returns whether that many are free.
  bool make_room(int64_t pages);

  int64_t blocks() const { return n_nodes_; }
  // Pages only the cache holds (unpinned blocks): free for the pool's other users on demand.
  int64_t evictable_pages() const { return unpinned_nodes_ * pages_per_block_; }
  int64_t pages_held() const { return n_nodes_ * pages_per_block_; }
  int64_t hits() const { return hit_tokens_; }  // tokens reused so far

 private:
  void evict(Node* node);
  Node* lru_leaf() const;
  // Evicts least recently used leaves until one more block fits the cache's own limit.
  bool make_block_room();
  void drop_covered_partials(Node* parent, const std::vector<int32_t>& tokens);

  std::shared_ptr<KvPool> pool_;
  int64_t max_pages_ = 0;
  int page_entries_ = 0;
  int64_t pages_per_block_ = 0;
  std::unique_ptr<Node> root_;
  int64_t n_nodes_ = 0;
  int64_t unpinned_nodes_ = 0;
  uint64_t clock_ = 0;
  int64_t hit_tokens_ = 0;
};

}  // namespace pareto::kv
