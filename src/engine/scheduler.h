// Scheduler: the step loop that serves many sequences with one model. Requests are submitted
// (a bounded queue), admitted while fewer than max_sequences run, and each step() gathers every
// running sequence's work into ONE batched forward: the entries its decoding strategy proposes,
// plus chunks of prompts still being evaluated (chunked prefill, within a token budget per step).
// New sequences join between steps (continuous batching); finished or cancelled ones leave and
// return their KV pages to the shared pool at once.
//
//   request -> queue -> step: gather batch -> forward -> each strategy accepts -> sampler
//           -> detokenizer -> stop rules -> callback (streamed text)
//
// Thread safety: submit(), cancel(), has_work() and counters() may be called from any thread.
// step() must not run on two threads at once (callers serialize it); callbacks run on the thread
// that calls step().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "base/thread_pool.h"
#include "decoding/drafter.h"
#include "decoding/strategy.h"
#include "engine/speculation_switch.h"
#include "engine/step_attention.h"
#include "engine/step_residuals.h"
#include "engine/strategy_memory.h"
#include "kv/kv_pool.h"
#include "kv/prefix_cache.h"
#include "model/model.h"
#include "pareto/pareto.h"
#include "sampling/logprobs.h"
#include "tokenizer/tokenizer.h"

namespace pareto::engine {

// Why a request ended: the public enum (include/pareto/pareto.h), one definition for both sides.
using ::pareto::stop_reason_name;
using ::pareto::StopReason;

struct RequestParams {
  sampling::SamplingParams sampling;
  int max_tokens = 128;           // < 0: until end of generation or the context is full
  std::vector<std::string> stop;  // stop strings: generation ends before the first occurrence
  bool ignore_eos = false;        // keep going past end-of-generation tokens
  std::string strategy = "autoregressive";
  int logprobs = -1;  // < 0: off; n >= 0: each token's logprob and its n most likely alternatives
  // KV budget (kv/kv_policy.h): the policy that picks the entries to evict, and how many each
  // layer and head keeps. "full" or a budget of everything: nothing is evicted.
  std::string kv_policy = "full";
  kv::KvBudget kv_budget;
};

struct RequestResult {
  uint64_t id = 0;
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;  // generated, without an end-of-generation token
  std::string text;             // their text, cut before a stop string
  StopReason stop_reason = StopReason::kMaxTokens;
  std::optional<Error> error;                     // with kError
  double queue_seconds = 0;                       // submit to admission
  double prompt_seconds = 0;                      // admission to the first generated token
  double decode_seconds = 0;                      // first generated token to the end
  int cached_prompt_tokens = 0;                   // prompt tokens taken from the prefix cache
  std::vector<sampling::TokenLogprobs> logprobs;  // per generated token, when asked for
  decoding::SpeculationStats speculation;         // zero unless the strategy speculates
  int64_t kv_evicted = 0;                         // KV entries its budget evicted (all layers)
};

struct RequestCallbacks {
  // Each generated token with the text it completed (may be empty: a multi-byte character in
  // progress, or text held back while it may start a stop string). Return false to stop. A last
  // call with token -1 may carry text still pending at the end.
  std::function<bool(std::string_view text, int32_t token)> on_token;
  // With RequestParams::logprobs >= 0: each generated token's logprobs, just before its on_token.
  std::function<void(const sampling::TokenLogprobs& logprobs)> on_logprob;
  // Once, when the request ends for any reason.
  std::function<void(const RequestResult& result)> on_done;
};

struct SchedulerOptions {
  int context_length = 4096;  // positions per sequence
  int max_sequences = 16;     // running at once; more wait in the queue
  int max_queue = 256;        // waiting requests; beyond it submit fails (kResourceExhausted)
  int step_tokens = 512;      // entries per forward: decode entries first, then prompt chunks
  kv::KvType key_type = kv::KvType::kF16;
  kv::KvType value_type = kv::KvType::kF16;
  int64_t max_kv_pages = 0;  // 0: no limit
  // KIVI types (kv/kv_pool.h): positions per key group, recent positions kept in f16.
  int kivi_group = 32;
  int kivi_residual = 128;
  model::ForwardOptions forward;
  // Speculative decoding: the longest draft per step, and a draft model for the strategies that
  // need one ("draft", "draft-adaptive"; its vocabulary must be the target's: check_draft_model).
  int draft_max = 8;
  bool fixed_draft_length = false;  // decoding::StrategyContext::fixed_draft_length
  const model::Model* draft_model = nullptr;
  ThreadPool* draft_pool = nullptr;  // the draft's forwards; null: the target's pool
  int draft_context_length = 0;      // <= 0: the draft's trained context, at most context_length
  // A corpus for the "sam" drafter (a static suffix automaton, shared read-only); null: none.
  std::shared_ptr<const decoding::SuffixAutomaton> sam_corpus;
  // Keep finished sequences' KV pages for later requests with the same prefix (kv/prefix_cache.h);
  // at most prefix_cache_max_pages of them (0: bounded by the pool, evicted when it runs short).
  bool prefix_cache = false;
  int64_t prefix_cache_max_pages = 0;
  // Speculation pays while verifying extra entries is nearly free (the weights are read once per
  // step whatever the batch); with many sequences decoding, the step is compute-bound and drafts
  // cost. N > 0: beyond N decoding sequences, speculative strategies get room for no draft (plain
  // decoding, still exact); 0: never switched off; kAutomatic: switched per step by measured
  // throughput at each batch size (engine/speculation_switch.h).
  static constexpr int kAutomatic = -1;
  int speculation_max_batch = 0;
};

struct SchedulerCounters {
  int running = 0;
  int waiting = 0;
  int64_t kv_pages_in_use = 0;  // the pool's, the prefix cache's included
  int64_t kv_bytes_in_use = 0;
  int64_t kv_pages_cached = 0;  // held by the prefix cache only (evictable on demand)
  int64_t prefix_cache_hit_tokens = 0;
  int64_t prompt_tokens = 0;       // evaluated so far
  int64_t generated_tokens = 0;    // accepted so far
  int64_t kv_evicted_entries = 0;  // by KV budgets, so far (entries of one layer and head each)
  int64_t kv_evicted_bytes = 0;    // what they held
  // Steps with speculative sequences decoding, by whether they could draft.
  int64_t speculation_steps_drafted = 0;
  int64_t speculation_steps_plain = 0;
  int64_t speculation_steps_explored = 0;  // one speculative sequence drafted (automatic switch)
};

// The draft model must share the target's vocabulary token for token (llama.cpp checks the
// same): errors name both files and the first difference.
Status check_draft_vocabulary(const tokenizer::Tokenizer& target, std::string_view target_name,
                              const tokenizer::Tokenizer& draft, std::string_view draft_name);

class Scheduler {
 public:
  // Checks the options (kinds of KV storage against the model's head size, positive limits).
  static Result<std::unique_ptr<Scheduler>> create(const model::Model& model,
                                                   const tokenizer::Tokenizer& tokenizer,
                                                   ThreadPool& pool,
                                                   const SchedulerOptions& options);
  ~Scheduler();

  // Queues a request; returns its id (> 0). Errors: empty prompt or token out of range
  // (kInvalidArgument), prompt longer than the context (kContextOverflow), queue full
  // (kResourceExhausted), unknown strategy.
  Result<uint64_t> submit(std::vector<int32_t> prompt, const RequestParams& params,
                          RequestCallbacks callbacks);
  // Ends a queued or running request (its on_done reports kCancelled at the next step). Unknown
  // or finished ids are ignored.
  void cancel(uint64_t id);
  // One batched forward over every running sequence (admitting and retiring sequences around
  // it). Does nothing when there is no work. Errors only for failures of the engine itself; a
  // request's own failure ends that request (kError) and the others go on.
  Status step();
  bool has_work() const;
  SchedulerCounters counters() const;
  const kv::KvPool& kv_pool() const { return *kv_pool_; }
  // Entries whose residual stream a forward captured for their strategy (CLaSp), since creation.
  int64_t residual_rows_captured() const { return residuals_.rows_captured(); }
  // Sets of cross-request drafter memories held (strategy_memory.h).
  size_t strategy_memories() const { return strategy_memories_.size(); }
  // The pools of the draft model's caches (null without a draft model) and of layer-skip drafts.
  const kv::KvPool* draft_kv_pool() const { return draft_.kv_pool.get(); }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Sequence;
  Scheduler(const model::Model& model, const tokenizer::Tokenizer& tokenizer, ThreadPool& pool,
            const SchedulerOptions& options);
  void admit();
  // Whether speculative sequences may draft in a step with `decoding` sequences decoding.
  SpeculationSwitch::Drafts drafts_allowed(int decoding);
  bool plan_decode(Sequence& s, int& budget, bool allow_drafts);
  bool plan_prompt(Sequence& s, int& budget);
  // rows: the logit rows the strategy accepted from (row j predicted the j-th new token).
  void emit(Sequence& s, int n_new, std::span<const float> rows);
  void finish(Sequence& s, StopReason reason, std::optional<Error> error = std::nullopt);
  // cache.reserve(n), evicting prefix-cache blocks when the pool is short.
  Status reserve(kv::KvCache& cache, int n);

  const model::Model& model_;
  const tokenizer::Tokenizer& tokenizer_;
  ThreadPool& pool_;
  SchedulerOptions options_;
  std::shared_ptr<kv::KvPool> kv_pool_;
  decoding::DraftModelResources draft_;       // draft_.model null: no draft model
  decoding::DraftModelResources self_draft_;  // the target as its own draft (layer skip)
  decoding::StrategyContext strategy_context_;
  StrategyMemories strategy_memories_;  // what drafters learn across requests, per strategy
  std::unique_ptr<kv::PrefixCache> prefix_cache_;  // null unless options.prefix_cache
  std::atomic<int64_t> cached_pages_{0};           // prefix_cache_'s, after each step
  std::atomic<int64_t> cache_hits_{0};

  mutable std::mutex mutex_;  // guards queue_, cancelled_, next_id_
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::unordered_set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  std::atomic<int> running_count_{0};
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> generated_tokens_{0};
  std::atomic<int64_t> kv_evicted_{0};
  std::atomic<int64_t> spec_steps_drafted_{0};
  std::atomic<int64_t> spec_steps_plain_{0};
  std::atomic<int64_t> spec_steps_explored_{0};

  // Step thread only.
  SpeculationSwitch speculation_switch_;
  uint64_t explore_turn_ = 0;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<model::BatchEntry> entries_;
  std::vector<kv::KvCache*> caches_;
  struct Planned {
    Sequence* seq;
    int n_rows;              // logit rows its entries asked for
    int n_entries;           // entries it put in the batch
    bool completes;          // a decode, or the prompt chunk that completes the prompt
    bool decode;             // a decode (the strategy's proposal), not a prompt chunk
    int32_t first_position;  // of its first entry
  };
  std::vector<Planned> planned_;
  std::vector<float> logits_;
  model::ForwardWorkspace workspace_;
  StepAttention step_attention_;  // attention weights for the sequences' KV policies
  StepResiduals residuals_;       // residual streams for the strategies that want them (CLaSp)
  // After a forward: hands the step's attention to s's KV policy and enforces its budget.
  void apply_kv_budget(Sequence& s, int seq_index, int32_t first_position);
  // Brings parked KV entries back when the sequence's policy asks (before its forward is planned).
  void before_forward(Sequence& s, bool prompt);
};

}  // namespace pareto::engine
