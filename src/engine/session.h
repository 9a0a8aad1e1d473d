// Session: everything loaded once per model (the mapped file, weights, tokenizer, thread pool).
// Sequences are created from it, each with its own KV cache, so several can share one model.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/thread_pool.h"
#include "decoding/decoding.h"
#include "formats/model_file.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace pareto::engine {

struct SessionOptions {
  std::string tokenizer_path;    // llama2.c checkpoints need their tokenizer.bin
  int n_threads = 0;             // <= 0: hardware threads
  int context_length = 0;        // <= 0: the trained context, at most kDefaultContextCap
  bool vocab_only = false;       // load the tokenizer only (no weights, no thread pool)
  bool flash_attention = false;  // online-softmax attention (kernels/attention.h)
};

// Default context when the caller names none: KV memory grows with it, and models trained on very
// long contexts would otherwise reserve gigabytes per sequence.
inline constexpr int kDefaultContextCap = 4096;

// One stream of tokens with its own cache.
class Sequence {
 public:
  explicit Sequence(kv::KvCache cache) : cache_(std::move(cache)) {}
  kv::KvCache& cache() { return cache_; }
  const kv::KvCache& cache() const { return cache_; }

 private:
  kv::KvCache cache_;
};

class Session {
 public:
  // Opens GGUF or llama2.c (see formats::open_model_file) and builds the tokenizer, and unless
  // vocab_only, the model. Errors name the file and the problem.
  static Result<std::unique_ptr<Session>> open(const std::string& model_path,
                                               const SessionOptions& options = {});

  const formats::ModelFile& file() const { return *file_; }
  const tokenizer::Tokenizer& tokenizer() const { return tokenizer_; }
  bool has_model() const { return model_ != nullptr; }
  const model::Model& model() const;  // CHECKs has_model()
  ThreadPool& pool();                 // CHECKs has_model()
  int context_length() const { return context_length_; }

  // A new sequence with an empty cache of context_length() positions.
  Result<Sequence> create_sequence() const;

  // Autoregressive decoding of `prompt` on `sequence` with the default sampler chain of `params`.
  // Stops at end-of-generation tokens of the tokenizer.
  Result<decoding::GenerateResult> generate(Sequence& sequence, std::span<const int32_t> prompt,
                                            const sampling::SamplingParams& params,
                                            decoding::GenerateOptions options);

 private:
  Session(std::shared_ptr<const formats::ModelFile> file, tokenizer::Tokenizer tokenizer)
      : file_(std::move(file)), tokenizer_(std::move(tokenizer)) {}
  std::shared_ptr<const formats::ModelFile> file_;
  tokenizer::Tokenizer tokenizer_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  int context_length_ = 0;
  model::ForwardOptions forward_options_;
};

}  // namespace pareto::engine
