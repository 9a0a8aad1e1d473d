// KV-cache budgets: a KvPolicy decides which entries of a sequence's cache to evict, the cache
// (kv_cache.h, erase per layer and KV head) acts, enforce_kv_budget() joins the two after each
// forward. Policy decides, mechanism acts: each policy is one file (kv_policy_*.cpp) registered
// by name in kv_policy.cpp.
//
// Scored policies (h2o, snapkv, pyramid, defensive) aggregate attention weights: the forward
// computes them only for sequences whose policy asks (model::AttentionObserver), so plain
// decoding pays nothing.
// Per-entry state is kept in entry order and compacted with the cache on every eviction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "kv/kv_cache.h"

namespace pareto::kv {

// How many entries each (layer, KV head) keeps: a fraction of the tokens the sequence has seen
// ("20%", "0.2") or a fixed count ("512"); or one such budget per layer ("40%,30%,20%,10%"), the
// user's allocation across layers, which then replaces the policy's own (layer_keep).
struct KvBudget {
  double fraction = 1.0;  // used when entries <= 0
  int entries = 0;
  std::vector<KvBudget> layers;  // per layer, in layer order; empty: this budget for every layer
  // Entries to keep after `seen` tokens (at least 1); per layer: layer `layer`'s.
  int keep(int seen) const;
  int keep(int layer, int seen) const {
    return layers.empty() ? keep(seen) : layers[static_cast<size_t>(layer)].keep(seen);
  }
  bool is_full() const {
    for (const KvBudget& l : layers) {
      if (!l.is_full()) return false;
    }
    return entries <= 0 && fraction >= 1.0;
  }
  // An error unless the budget fits a model of n_layers layers (per-layer budgets: one each).
  Status check_layers(int n_layers) const;
};

// "20%" (0 < p <= 100), "0.2" (0 < f <= 1) or "512" (a whole number >= 1 of entries); or such
// budgets separated by commas, one per layer.
Result<KvBudget> parse_kv_budget(std::string_view text);

class KvPolicy {
 public:
  virtual ~KvPolicy() = default;
  virtual std::string_view name() const = 0;
  // Entries layer `layer` keeps when the budget is `keep` per layer on average and the sequence
  // has seen `seen` tokens (PyramidKV gives lower layers more); at least 1.
  virtual int layer_keep(int layer, int keep, int seen) const {
    (void)layer, (void)seen;
    return keep;
  }
  // Whether the policy moves budget between a layer's KV heads (Ada-KV): then head_keeps() gives
  // each head's count, and a layer evicts only once its heads together hold more than the budget.
  virtual bool shares_budget_between_heads() const { return false; }
  // Entries each KV head of `layer` keeps (keeps[h], at least 1) when the layer keeps `keep` per
  // head on average: `keep` each, unless the policy moves budget between heads.
  virtual void head_keeps(const KvCache& cache, int layer, int keep, std::span<int> keeps) {
    (void)cache, (void)layer;
    std::fill(keeps.begin(), keeps.end(), keep);
  }
  // The shortest prompt the policy can work from (snapkv: its observation window needs 2).
  virtual int min_prompt_tokens() const { return 1; }
  // Whether observe() must be fed attention weights.
  virtual bool needs_attention() const { return false; }
  // Policies that only narrow attention (RefreshKV) keep what they take out: enforce_kv_budget
  // copies the chosen entries into a small cache that replaces `cache` and parks the whole one,
  // and before a forward for which restore_before_forward() says so (asked once per forward of the
  // sequence; `prompt`: the forward evaluates prompt tokens) the whole one comes back
  // (before_kv_forward), so that forward attends to everything.
  virtual bool keeps_evicted() const { return false; }
  virtual bool restore_before_forward(bool prompt) {
    (void)prompt;
    return false;
  }
  // The attention weights of n_queries new queries over (layer, head)'s `length` entries, in entry
  // order, one softmax row per query head that shares this KV head (`group` of them):
  // weights[(q * group + j) * length + e] (entries a query may not see have weight 0). Called once
  // per layer and head after each forward that appended entries, before any eviction.
  virtual void observe(int layer, int head, std::span<const float> weights, int n_queries,
                       int group, int length) {
    (void)layer, (void)head, (void)weights, (void)n_queries, (void)group, (void)length;
  }
  // Entries of (layer, head) to evict, ascending, so that `keep` (< length) remain.
  virtual std::vector<int> select(const KvCache& cache, int layer, int head, int keep) = 0;
  // The cache erased `indices` of (layer, head) (ascending) or, after a rollback, holds only
  // `length` entries: per-entry state follows.
  virtual void erased(int layer, int head, std::span<const int> indices) {
    (void)layer, (void)head, (void)indices;
  }
  virtual void truncated(int layer, int head, int length) { (void)layer, (void)head, (void)length; }
};

// A policy by name, for caches of `shape`. Unknown names: an error listing the known ones.
Result<std::unique_ptr<KvPolicy>> make_kv_policy(std::string_view name, const KvShape& shape);
std::vector<std::string> kv_policy_names();

// Entries an eviction leaves when `keep` may stay: keep minus a slack of keep / 256, so that a
// large cache evicts a batch every keep / 256 steps instead of one entry per step (each eviction
// compacts the slot: every later entry moves); a cache of fewer than 256 kept entries evicts to
// exactly `keep`. The cache never holds more than `keep`.
constexpr int eviction_target(int keep) {
  return keep - keep / 256;
}

// Evicts, per (layer, head), what `policy` selects so that at most
// policy.layer_keep(layer, budget.keep(n_tokens())) entries remain (per-layer budgets:
// budget.keep(layer, n_tokens())), evicting down to eviction_target of it; nothing while the budget
// holds every token seen. Returns the
// entries evicted in all. CHECKs budget.check_layers, and that a policy that keeps_evicted() gets
// `parked` (an empty cache of the same pool): `cache` then becomes the small cache of the kept
// entries and `parked` the whole one (the count returned is of entries left out, not freed; 0, and
// nothing changed, when the pool has no pages for the small copy).
int64_t enforce_kv_budget(KvCache& cache, KvPolicy& policy, const KvBudget& budget,
                          KvCache* parked = nullptr);

// Before a forward of the sequence: when the policy asks (KvPolicy::restore_before_forward;
// `prompt`: the forward evaluates prompt tokens), `cache` becomes the whole cache again (the parked
// one, plus the entries appended since it was parked) and `parked` empties.
void before_kv_forward(KvCache& cache, KvPolicy& policy, KvCache& parked, bool prompt);

// The policies' constructors (one file each), for the registry.
std::unique_ptr<KvPolicy> make_window_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_h2o_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_snapkv_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_pyramid_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_defensive_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_refresh_policy(const KvShape& shape);
std::unique_ptr<KvPolicy> make_adakv_policy(const KvShape& shape);
// `refresh`: one forward in this many attends to the whole context (RefreshKV's stride).
constexpr int kRefreshStride = 8;

// Per-entry scores of every (layer, head), in entry order, compacted with the cache: the state
// the scored policies keep.
class EntryScores {
 public:
  explicit EntryScores(const KvShape& shape)
      : heads_(shape.n_kv_heads), scores_(static_cast<size_t>(shape.n_layers * shape.n_kv_heads)) {}
  std::vector<float>& at(int layer, int head) {
    return scores_[static_cast<size_t>(layer * heads_ + head)];
  }
  // Grows (layer, head) to `length` entries (new ones score 0).
  std::vector<float>& sized(int layer, int head, int length);
  void erase(int layer, int head, std::span<const int> indices);
  void truncate(int layer, int head, int length);

 private:
  int heads_;
  std::vector<std::vector<float>> scores_;
};

// The entries to evict so that `keep` of score.size() remain: the last `recent` always stay, the
// others by score, highest first (ties: the earlier entry). Ascending.
std::vector<int> drop_all_but_recent_and_top(std::span<const float> score, int keep, int recent);

// Removes v's elements at `indices` (ascending; those past v's end are ignored), keeping order.
void erase_indices(std::vector<float>& v, std::span<const int> indices);

// Indices [0, length) not in `kept` (which may be unsorted), ascending.
std::vector<int> complement(std::vector<int> kept, int length);

}  // namespace pareto::kv
