// Decoding: turns a model and a sampler into a stream of tokens. A DecodingStrategy produces the
// next accepted tokens one step at a time; generate() drives any strategy and applies the stop
// rules (max tokens, end of generation, context full, caller's request).
//
// Design room: a speculative strategy proposes several draft tokens, verifies them in one batched
// forward (ForwardOptions::all_logits), accepts a prefix and rolls the cache back with
// KvCache::truncate; it returns that prefix from step() and generate() needs no change.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "sampling/sampler.h"

namespace pareto::decoding {

class DecodingStrategy {
 public:
  virtual ~DecodingStrategy() = default;
  // Evaluates the prompt (appended to the cache) and prepares the first step.
  virtual Status prefill(std::span<const int32_t> prompt) = 0;
  // The next accepted tokens, at least one, already recorded in the sampler's history. Empty when
  // no room is left in the context for another step.
  virtual Result<std::vector<int32_t>> step() = 0;
};

// One forward per token: prefill the prompt in one batch, then sample, evaluate the sampled token,
// sample again. The last sampled token is "pending": it is in the sequence but not yet in the
// cache, so a context of C positions holding P prompt tokens yields up to C - P + 1 tokens.
class Autoregressive final : public DecodingStrategy {
 public:
  Autoregressive(const model::Model& model, kv::KvCache& cache, sampling::SamplerChain& sampler,
                 ThreadPool& pool, model::ForwardOptions forward = {})
      : model_(model), cache_(cache), sampler_(sampler), pool_(pool), forward_(forward) {}

  Status prefill(std::span<const int32_t> prompt) override;
  Result<std::vector<int32_t>> step() override;

 private:
  const model::Model& model_;
  kv::KvCache& cache_;
  sampling::SamplerChain& sampler_;
  ThreadPool& pool_;
  model::ForwardOptions forward_;  // all_logits stays off: one row, the next token's
  std::vector<float> logits_;      // [1, n_vocab]: the distribution of the next token
  std::optional<int32_t> pending_;
  bool ready_ = false;
};

enum class StopReason {
  kMaxTokens,
  kEndOfGeneration,
  kContextFull,
  kCallback,  // the token callback asked to stop
};
std::string_view stop_reason_name(StopReason reason);

struct GenerateOptions {
  int max_tokens = 128;  // < 0: until end of generation or the context is full
  // Tokens that end generation (not included in the output). Empty: none.
  std::function<bool(int32_t)> is_end_of_generation;
  // Called for each generated token as it is accepted; returning false stops. Empty: none.
  std::function<bool(int32_t)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated, without the end-of-generation token
  StopReason stop_reason = StopReason::kMaxTokens;
  double prefill_seconds = 0;  // evaluating the prompt
  double decode_seconds = 0;   // every step after prefill (sampling and forwards)
};

// Prefills `prompt` (non-empty) and steps until a stop rule fires.
Result<GenerateResult> generate(DecodingStrategy& strategy, std::span<const int32_t> prompt,
                                const GenerateOptions& options);

}  // namespace pareto::decoding
