// Session: everything loaded once per model (the mapped file, weights, tokenizer, thread pool).
// Sequences are served from it by a Scheduler (scheduler.h), which shares one KV page pool among
// them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "kernels/kernel_path.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace pareto::engine {

struct SessionOptions {
  std::string tokenizer_path;  // llama2.c checkpoints need their tokenizer.bin
  int n_threads = 0;           // <= 0: hardware threads
  int context_length = 0;      // <= 0: the trained context, at most kDefaultContextCap
  bool vocab_only = false;     // load the tokenizer only (no weights, no thread pool)
  model::ModelLoadOptions model;
};

// Default context when the caller names none: KV memory grows with it, and models trained on very
// long contexts would otherwise reserve gigabytes per sequence.
inline constexpr int kDefaultContextCap = 4096;

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

 private:
  Session(std::shared_ptr<const formats::ModelFile> file, tokenizer::Tokenizer tokenizer)
      : file_(std::move(file)), tokenizer_(std::move(tokenizer)) {}
  std::shared_ptr<const formats::ModelFile> file_;
  tokenizer::Tokenizer tokenizer_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  int context_length_ = 0;
};

}  // namespace pareto::engine
