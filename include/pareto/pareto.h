// Pareto's public C++ API: load a model, tokenize, generate with streaming, or serve many
// requests at once (submit / step / cancel: continuous batching in one batched forward per step).
//
//   auto engine = pareto::Engine::load("stories260K.gguf");
//   if (!engine) { report(engine.error().message); }
//   pareto::GenerateParams params;
//   params.temperature = 0;  // greedy
//   auto out = (*engine)->generate("Once upon a time", params,
//                                  [](std::string_view text, int32_t) { print(text); return true;
//                                  });
//
// Thread safety: every method may be called from any thread. step() runs one batched forward
// over every running request and serializes with itself; generate() submits its request and
// calls step() until that request ends, so concurrent generate() calls share their steps (each
// step advances all of them). Callbacks run on whichever thread is inside step().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pareto/result.h"

namespace pareto {

namespace engine {
class Session;
class Scheduler;
}  // namespace engine

struct LoadOptions {
  std::string tokenizer_path;  // needed for llama2.c checkpoints (their tokenizer.bin)
  int n_threads = 0;           // <= 0: hardware threads
  int context_length = 0;      // per sequence; <= 0: the model's trained context, at most 4096
  bool vocab_only = false;     // tokenizer only: tokenize works, generate fails; loads no weights
  // Online-softmax attention, one pass over the cache with no score row (llama.cpp's -fa). Same
  // function as the default; the rounding differs, so logits may differ in the last bits.
  bool flash_attention = false;
  // Kernel summation order: "" (llama.cpp's order for this CPU), "scalar", "llamacpp-avx2",
  // "llamacpp-avx512", "llamacpp-amx". An unknown name is an error naming the valid ones.
  std::string kernels;
  // Pack / copy the weights for the fast kernels (same results); false: read the mapped file.
  bool place_weights = true;
  // KV cache storage (llama.cpp's --cache-type-k / -v): "f32", "f16" (default, as llama.cpp),
  // "q8_0", "q4_0" (head size a multiple of 32), or KIVI's "kivi4", "kivi2" (keys per channel,
  // values per token; lossy: the prefix cache does not share such caches).
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  // KIVI types: the most recent positions kept in f16 (the paper's residual length).
  int kivi_residual = 128;
  int max_sequences = 16;  // requests decoded together; more wait in the queue
  int max_queue = 256;     // waiting requests; beyond it submit fails (kResourceExhausted)
  // KV entries (tokens) the shared page pool holds across all sequences; 0: no limit; < 0:
  // context_length x max_sequences. Any one request may use up to context_length of them (no
  // fixed slots); a request that finds the pool full ends with an error (kResourceExhausted).
  int64_t kv_cache_tokens = 0;
  // Prefix cache: finished requests' KV pages stay for later requests that start with the same
  // tokens (a system prompt, a chat history), which then evaluate only the rest. Evicted least
  // recently used when the pool runs short; with no kv_cache_tokens limit it keeps at most
  // context_length x max_sequences tokens.
  bool prefix_cache = false;
  int step_tokens = 512;  // entries per batched forward (decodes first, then prompt chunks)
  // Batch-invariant numerics: a request's logits do not depend on what shares its forward (every
  // row computed in single-token order). Off (default): llama.cpp's batch-size-dependent order,
  // so a lone request's logits match llama.cpp's bit for bit.
  bool batch_invariant = false;
  // Speculative decoding: a draft model (GGUF or llama2.c) with the target's vocabulary, for the
  // strategies "draft" and "draft-adaptive" (checked at load: an error names the first token
  // that differs), and the longest draft per step for every speculative strategy.
  std::string draft_model_path;
  int draft_max = 8;
  // The model-free drafters ("ngram", "sam") propose every token they find, up to draft_max.
  // Off (the default): each proposal is cut to the length that the sequence's measured
  // acceptance by draft position and verification cost say pays best (possibly none).
  bool fixed_draft_length = false;
  // Text files the "sam" strategy also drafts from (SAM Decoding's static corpus): each file one
  // document, tokenized once at load into a suffix automaton shared by every request. A file that
  // cannot be read fails the load naming it.
  std::vector<std::string> sam_corpus_files;
  // Threads of the draft model's forwards; <= 0: one for a draft file under 64 MiB (its per-token
  // work is shorter than handing work to other threads), else n_threads.
  int draft_threads = 0;
  // The draft model's matrices converted at load to "q8_0", "q4_0", "f16" or "bf16", as
  // llama-quantize would write them ("": the file's types). Drafts read their weights once per
  // draft token, so an F32 draft converted to q8_0 drafts faster; the output is still exactly
  // the target's (only acceptance can change). Only F32/F16/BF16 drafts can be converted.
  std::string draft_weight_type;
  // Beyond this many sequences decoding together, speculative requests decode plainly (drafts
  // stop paying once a step is compute-bound; still exact). 0: no limit. -1: automatic, per step
  // from the throughput measured with and without drafts at each batch size (the server's
  // default; a lone run keeps 0 so that its strategy is what is measured).
  int speculation_max_batch = 0;
};

struct GenerateParams {
  int max_tokens = 128;            // < 0: until end of generation or the context is full
  float temperature = 0.8f;        // <= 0: greedy (argmax)
  int top_k = 40;                  // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off
  int repeat_last_n = 64;          // tokens the penalties look back over
  float frequency_penalty = 0.0f;  // OpenAI's: logit -= count * frequency + (count > 0) *
  float presence_penalty = 0.0f;   // presence, count over the last repeat_last_n tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id, added to its logit
  uint64_t seed = 0x5eed;                             // fixed default: runs are reproducible
  bool add_bos = true;                                // prepend BOS when the model's tokenizer does
  std::vector<std::string> stop;  // generation ends before the first of these strings
  bool ignore_eos = false;        // keep generating past end-of-generation tokens
  // Decoding strategy by name: "autoregressive" (also when empty), or a speculative one: "ngram"
  // (prompt lookup, with an n-gram cache shared across requests), "sam" (suffix automaton),
  // "draft" / "draft-adaptive" / "tree" (a draft model, LoadOptions::draft_model_path; "tree"
  // verifies a token tree: greedy requests by the target's argmax walk, sampled ones by SpecInfer's
  // multi-candidate rejection sampling), "bandit" (picks
  // among the others and plain decoding, per request, by measured speed). Speculation is lossless:
  // greedy output equals plain decoding's (in the batch-invariant mode; otherwise up to the batch's
  // summation order), and sampled output follows the same distribution (rejection sampling). An
  // unknown name fails the request with the valid names.
  std::string strategy;
  // Log-probabilities (OpenAI's logprobs): < 0 off; n in [0, 20]: each generated token's log
  // softmax of the raw logits, and its n most likely alternatives (Generation::logprobs, and the
  // LogprobCallback of submit). Not with the "tree" strategy.
  int logprobs = -1;
  // KV-cache budget: a policy by name ("full" when empty: nothing evicted; "window", "h2o",
  // "snapkv") and how many entries each layer and KV head keeps ("20%" of the tokens seen, "0.2",
  // or a count such as "512"; empty: everything; or one budget per layer, "40%,30%,20%,10%", the
  // model's layer count of them, which replaces the policy's own allocation across layers). Lossy:
  // the evicted entries are gone for the rest of the request. Bad names or budgets fail the request
  // naming the value.
  std::string kv_policy;
  std::string kv_budget;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (token, logprob), most likely first
};

enum class StopReason {
  kMaxTokens,
  kEndOfGeneration,
  kStopString,
  kContextFull,
  kCallback,   // the stream callback returned false
  kCancelled,  // Engine::cancel
  kError,      // the request failed (its error is returned or passed to on_done)
};
// "max_tokens", "end_of_generation", "stop_string", "context_full", "callback", "cancelled",
// "error".
std::string_view stop_reason_name(StopReason reason);

// What speculative decoding did for a request (zeros for plain decoding).
struct SpeculationStats {
  int64_t steps = 0;          // target forwards that verified this request's drafts
  int64_t drafted = 0;        // draft tokens proposed
  int64_t accepted = 0;       // of them, accepted
  double draft_seconds = 0;   // in the drafter
  double verify_seconds = 0;  // in the target forwards that verified (shared with the batch)
  std::vector<int64_t> drafted_at, accepted_at;  // by draft position (0: first after pending)
  double acceptance_rate() const { return drafted > 0 ? double(accepted) / drafted : 0.0; }
  // Tokens gained per verification: accepted drafts + the target's own token.
  double mean_accepted() const { return steps > 0 ? double(accepted) / steps + 1.0 : 0.0; }
};

struct GenerationStats {
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // of them, taken from the prefix cache (not evaluated)
  double prompt_seconds = 0;     // admission to the first generated token
  int generated_tokens = 0;
  double generate_seconds = 0;
  double queue_seconds = 0;  // waiting for a free sequence slot
  SpeculationStats speculation;
  double prompt_tokens_per_second() const;
  double generated_tokens_per_second() const;
};

struct Generation {
  uint64_t id = 0;
  std::vector<int32_t> prompt_tokens;  // as evaluated (with BOS where added)
  std::vector<int32_t> tokens;         // generated, without the end-of-generation token
  std::string text;                    // the generated tokens' text (cut before a stop string)
  std::vector<TokenLogprob> logprobs;  // per generated token, with GenerateParams::logprobs >= 0
  StopReason stop_reason = StopReason::kMaxTokens;
  GenerationStats stats;
};

// Called per generated token with the complete UTF-8 text it made available (may be empty while a
// multi-byte character is incomplete or text may start a stop string). Return false to stop. A
// last call with token -1 may carry bytes still pending at the end (invalid UTF-8 replaced by
// U+FFFD).
using StreamCallback = std::function<bool(std::string_view text, int32_t token)>;
// With GenerateParams::logprobs >= 0: each generated token's logprobs, just before its
// StreamCallback call.
using LogprobCallback = std::function<void(const TokenLogprob& logprob)>;
// Called once when a submitted request ends: its generation, or its error.
using DoneCallback = std::function<void(const Result<Generation>& result)>;

// What a loaded model is, for servers and tools.
struct ModelInfo {
  std::string name;           // general.name, else the file name without extension
  std::string path;           // as loaded
  std::string chat_template;  // tokenizer.chat_template (Jinja), "" if none
  std::string bos_token;      // the texts of BOS and EOS ("" if none), for chat templates
  std::string eos_token;
  int32_t n_vocab = 0;
  int context_length = 0;          // per sequence
  int trained_context_length = 0;  // as the model file states
};

struct EngineCounters {
  int running = 0;
  int waiting = 0;
  int64_t kv_pages_in_use = 0;
  int64_t kv_pages_total = 0;   // the pool's limit (LoadOptions::kv_cache_tokens); 0: none
  int64_t kv_pages_cached = 0;  // of those in use, held by the prefix cache only (evictable)
  int64_t prefix_cache_hit_tokens = 0;  // prompt tokens taken from the prefix cache so far
  // Steps with speculative requests decoding, by whether drafts were allowed
  // (LoadOptions::speculation_max_batch).
  int64_t speculation_steps_drafted = 0;
  int64_t speculation_steps_plain = 0;
  int64_t speculation_steps_explored = 0;  // automatic: one speculative request drafted
  int64_t kv_bytes_in_use = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  // KV-cache budgets (GenerateParams::kv_policy): entries evicted so far (one layer and KV head
  // each) and the bytes they held.
  int64_t kv_evicted_entries = 0;
  int64_t kv_evicted_bytes = 0;
};

class Engine {
 public:
  // Errors name the file and the problem; an unknown kernel order or cache type names the valid
  // ones.
  static Result<std::unique_ptr<Engine>> load(const std::string& model_path,
                                              const LoadOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // add_bos: prepend BOS if the model's tokenizer adds one by default. parse_special: text such
  // as "<|im_start|>" becomes its special token (chat prompts), not ordinary text.
  std::vector<int32_t> tokenize(std::string_view text, bool add_bos = true,
                                bool parse_special = false) const;
  std::string detokenize(std::span<const int32_t> tokens) const;
  // One token's bytes as it contributes to text, special tokens as their text ("<|eot_id|>");
  // may be part of a UTF-8 character.
  std::string token_piece(int32_t token) const;
  int context_length() const;  // per sequence; 0 when loaded vocab-only
  ModelInfo model_info() const;

  // Decodes a fresh sequence to the end. Errors: prompt longer than the context
  // (kContextOverflow: "prompt has N tokens, context is M"), empty prompt, vocab-only engine,
  // queue full (kResourceExhausted).
  Result<Generation> generate(std::string_view prompt, const GenerateParams& params,
                              const StreamCallback& on_text = {});
  Result<Generation> generate_from_tokens(std::vector<int32_t> prompt_tokens,
                                          const GenerateParams& params,
                                          const StreamCallback& on_text = {});

  // Queues a request and returns its id; it advances as step() runs. Same errors as generate.
  Result<uint64_t> submit(std::vector<int32_t> prompt_tokens, const GenerateParams& params,
                          StreamCallback on_text = {}, DoneCallback on_done = {},
                          LogprobCallback on_logprob = {});
  // Ends a queued or running request at the next step (StopReason::kCancelled); its KV pages
  // return to the pool. Unknown ids are ignored.
  void cancel(uint64_t id);
  // One batched forward over every running request; nothing when idle.
  Status step();
  bool has_work() const;
  EngineCounters counters() const;

 private:
  Engine(std::unique_ptr<engine::Session> session, std::unique_ptr<engine::Session> draft,
         std::unique_ptr<engine::Scheduler> scheduler);
  struct StepLock;
  std::unique_ptr<engine::Session> session_;
  std::unique_ptr<engine::Session> draft_;  // the draft model's, when loaded
  std::unique_ptr<engine::Scheduler> scheduler_;
  std::unique_ptr<StepLock> step_lock_;
};

}  // namespace pareto
