// StepAttention: the attention weights of one step's forward, held per sequence until the
// sequence's strategy has accepted, then handed to its KV policy (kv/kv_policy.h) for the queries
// whose entries stayed in the cache. A speculative step's rejected drafts thus never reach the
// policy: its state is what it would be had they never been drafted.
#pragma once

#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_policy.h"
#include "model/model.h"

namespace pareto::engine {

class StepAttention final : public model::AttentionObserver {
 public:
  // Clears the previous step; `n_seqs`: the step's caches (batch entries' seq indexes).
  void begin_step(int n_seqs);
  // Sequence `seq` of this step has `policy` (null: none).
  void set(int seq, kv::KvPolicy* policy);
  bool any() const { return any_; }
  bool wants(int seq) const override;
  void observe(int seq, int layer, int head, std::span<const float> weights, int n_queries,
               int group, int length) override;
  // Hands sequence `seq`'s weights to its policy: the rows of queries at positions below
  // cache.n_tokens() (the run's first entry at `first_position`; its entries are consecutive
  // positions), trimmed to each (layer, head)'s current length; then tells the policy each
  // head's length (after a rollback).
  void commit(int seq, int32_t first_position, const kv::KvCache& cache);

 private:
  struct Record {
    int layer, head, n_queries, group, length;
    std::vector<float> weights;
  };
  std::vector<kv::KvPolicy*> policies_;
  std::vector<std::vector<Record>> records_;  // per seq
  std::vector<float> trimmed_;
  bool any_ = false;
};

}  // namespace pareto::engine
