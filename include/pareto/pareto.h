// Pareto's public C++ API: load a model, tokenize, generate with streaming.
//
//   auto engine = pareto::Engine::load("stories260K.gguf");
//   if (!engine) { report(engine.error().message); }
//   pareto::GenerateParams params;
//   params.temperature = 0;  // greedy
//   auto out = (*engine)->generate("Once upon a time", params,
//                                  [](std::string_view text, int32_t) { print(text); return true;
//                                  });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pareto {

namespace engine {
class Session;
}

struct LoadOptions {
  std::string tokenizer_path;  // needed for llama2.c checkpoints (their tokenizer.bin)
  int n_threads = 0;           // <= 0: hardware threads
  int context_length = 0;      // <= 0: the model's trained context, at most 4096
  bool vocab_only = false;     // tokenizer only: tokenize works, generate fails; loads no weights
  // Online-softmax attention, one pass over the cache with no score row (llama.cpp's -fa). Same
  // function as the default; the rounding differs, so logits may differ in the last bits.
  bool flash_attention = false;
};

struct GenerateParams {
  int max_tokens = 128;         // < 0: until end of generation or the context is full
  float temperature = 0.8f;     // <= 0: greedy (argmax)
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;
  uint64_t seed = 0x5eed;  // fixed default: runs are reproducible
  bool add_bos = true;     // prepend BOS when the model's tokenizer does
};

struct GenerationStats {
  int prompt_tokens = 0;
  double prompt_seconds = 0;
  int generated_tokens = 0;
  double generate_seconds = 0;
  double prompt_tokens_per_second() const;
  double generated_tokens_per_second() const;
};

struct Generation {
  std::vector<int32_t> prompt_tokens;  // as evaluated (with BOS where added)
  std::vector<int32_t> tokens;         // generated, without the end-of-generation token
  std::string text;                    // the generated tokens' text
  std::string stop_reason;  // "max_tokens", "end_of_generation", "context_full", "callback"
  GenerationStats stats;
};

// Called per generated token with the complete UTF-8 text it made available (may be empty while a
// multi-byte character is incomplete). Return false to stop. A last call with token -1 may carry
// bytes still pending at the end (invalid UTF-8 replaced by U+FFFD).
using StreamCallback = std::function<bool(std::string_view text, int32_t token)>;

class Engine {
 public:
  // Errors name the file and the problem.
  static Result<std::unique_ptr<Engine>> load(const std::string& model_path,
                                              const LoadOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // add_bos: prepend BOS if the model's tokenizer adds one by default.
  std::vector<int32_t> tokenize(std::string_view text, bool add_bos = true) const;
  std::string detokenize(std::span<const int32_t> tokens) const;
  int context_length() const;  // 0 when loaded vocab-only

  // Each call decodes a fresh sequence. Errors: prompt longer than the context ("prompt has N
  // tokens, context is M"), empty prompt, vocab-only engine.
  Result<Generation> generate(std::string_view prompt, const GenerateParams& params,
                              const StreamCallback& on_text = {});
  Result<Generation> generate_from_tokens(std::vector<int32_t> prompt_tokens,
                                          const GenerateParams& params,
                                          const StreamCallback& on_text = {});

  // The internals, for tools that need more than this API.
  engine::Session& session() { return *session_; }

 private:
  explicit Engine(std::unique_ptr<engine::Session> session);
  std::unique_ptr<engine::Session> session_;
};

}  // namespace pareto
