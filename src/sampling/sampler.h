// Sampling as a chain of small logit processors (llama.cpp's sampler-chain idea): each processor
// narrows or reshapes a list of candidate tokens, and a final pick chooses one. Processing and
// picking are separate steps: process() gives the processed distribution (what rejection sampling
// compares between a target and a draft), pick() draws from it with the chain's RNG (one chain
// per sequence: its RNG is the sequence's). Processors read the sequence's history as an argument
// and keep none of their own, so rolling a sequence back needs no undo. The default chain
// is: repetition penalty -> top-k -> top-p -> min-p -> temperature -> seeded random draw, or,
// when temperature <= 0, repetition penalty -> greedy argmax.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace pareto::sampling {

// A fixed default seed keeps runs reproducible unless the caller picks another.
inline constexpr uint64_t kDefaultSeed = 0x5eed;

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;       // tokens of history the penalties look at; 0: off
  // OpenAI's penalties (llama.cpp's penalty sampler): logit -= count * frequency + (count > 0) *
  // presence, count over the last repeat_last_n tokens. 0: off.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // Added to a token's logit before every other processor (OpenAI's logit_bias; -inf bans).
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = kDefaultSeed;
};

struct Candidate {
  int32_t id = 0;
  float logit = 0.0f;
  float prob = 0.0f;  // valid only after softmax()
};

// The tokens still in play. Processors may reorder, drop and rescale entries.
struct Candidates {
  std::vector<Candidate> items;
  bool sorted = false;  // items sorted by logit, descending (ties: lower id first)

  static Candidates from_logits(std::span<const float> logits);
  // Replaces the items with one per logit (ids in order), reusing the storage.
  void assign(std::span<const float> logits);
  void sort_descending();
  // Fills prob with softmax(logit) over the current items (max-subtracted, in double).
  void softmax();
};

class LogitProcessor {
 public:
  virtual ~LogitProcessor() = default;
  virtual std::string_view name() const = 0;
  // history: the sequence's tokens so far (prompt and generated), oldest first.
  virtual void apply(Candidates& candidates, std::span<const int32_t> history) = 0;
};

// llama.cpp's penalty: each distinct token among the last `last_n` accepted gets
// logit > 0 ? logit / penalty : logit * penalty (once, whatever its count).
class RepetitionPenalty final : public LogitProcessor {
 public:
  RepetitionPenalty(float penalty, int last_n) : penalty_(penalty), last_n_(last_n) {}
  std::string_view name() const override { return "repetition_penalty"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  float penalty_;
  int last_n_;
};

// logit -= count * frequency + (count > 0) * presence, count = occurrences among the last
// `last_n` tokens (OpenAI's frequency and presence penalties, as llama.cpp applies them).
class FrequencyPresencePenalty final : public LogitProcessor {
 public:
  FrequencyPresencePenalty(float frequency, float presence, int last_n)
      : frequency_(frequency), presence_(presence), last_n_(last_n) {}
  std::string_view name() const override { return "frequency_presence_penalty"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  float frequency_, presence_;
  int last_n_;
};

// Adds a fixed bias to chosen tokens' logits (OpenAI's logit_bias).
class LogitBias final : public LogitProcessor {
 public:
  explicit LogitBias(std::vector<std::pair<int32_t, float>> bias) : bias_(std::move(bias)) {}
  std::string_view name() const override { return "logit_bias"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  std::vector<std::pair<int32_t, float>> bias_;
};

// Keeps the k highest logits (ties broken towards lower ids).
class TopK final : public LogitProcessor {
 public:
  explicit TopK(int k) : k_(k) {}
  std::string_view name() const override { return "top_k"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  int k_;
};

// Nucleus: keeps the smallest prefix (by descending probability) whose mass reaches p.
class TopP final : public LogitProcessor {
 public:
  explicit TopP(float p) : p_(p) {}
  std::string_view name() const override { return "top_p"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  float p_;
};

// Keeps tokens whose probability is at least min_p times the most likely token's.
class MinP final : public LogitProcessor {
 public:
  explicit MinP(float p) : p_(p) {}
  std::string_view name() const override { return "min_p"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  float p_;
};

// Divides every logit by the temperature (> 0).
class Temperature final : public LogitProcessor {
 public:
  explicit Temperature(float t) : t_(t) {}
  std::string_view name() const override { return "temperature"; }
  void apply(Candidates& candidates, std::span<const int32_t> history) override;

 private:
  float t_;
};

// The final choice among the surviving candidates.
class TokenPicker {
 public:
  virtual ~TokenPicker() = default;
  virtual int32_t pick(Candidates& candidates) = 0;
  // A uniform draw in [0, 1) from the picker's RNG (a random picker only: CHECKs otherwise).
  virtual double uniform();
};

// Argmax; ties go to the lowest id.
class GreedyPicker final : public TokenPicker {
 public:
  int32_t pick(Candidates& candidates) override;
};

// Draws from softmax(logits) with a std::mt19937 seeded once at construction.
class RandomPicker final : public TokenPicker {
 public:
  explicit RandomPicker(uint64_t seed) : rng_(static_cast<std::mt19937::result_type>(seed)) {}
  int32_t pick(Candidates& candidates) override;
  double uniform() override;

 private:
  std::mt19937 rng_;
};

class SamplerChain {
 public:
  explicit SamplerChain(std::unique_ptr<TokenPicker> picker) : picker_(std::move(picker)) {}

  // Builds the default chain for `params` (see the file comment).
  static SamplerChain from_params(const SamplingParams& params);

  SamplerChain& add(std::unique_ptr<LogitProcessor> processor);
  // Runs the processors over `logits` ([n_vocab]) given the sequence's `history`: the surviving
  // candidates, sorted by descending logit, with `prob` their processed distribution (softmax of
  // the processed logits; for a greedy chain, the argmax alone with probability 1).
  Candidates process(std::span<const float> logits, std::span<const int32_t> history = {}) const;
  // The same into `out`, reusing its storage (no allocation once it has held n_vocab items).
  void process(std::span<const float> logits, std::span<const int32_t> history,
               Candidates& out) const;
  // Picks a token from processed candidates (advances the RNG of a sampling chain).
  int32_t pick(Candidates& candidates);
  // A uniform draw in [0, 1) from the chain's RNG, the one pick() uses (sampling chains only):
  // rejection sampling's acceptance test draws here so one seed fixes the whole output.
  double uniform() { return picker_->uniform(); }
  // process() then pick(), in a buffer the chain keeps: no allocation per token.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {});
  bool greedy() const { return greedy_; }

  const std::vector<std::unique_ptr<LogitProcessor>>& processors() const { return processors_; }

 private:
  std::vector<std::unique_ptr<LogitProcessor>> processors_;
  std::unique_ptr<TokenPicker> picker_;
  bool greedy_ = false;
  Candidates scratch_;  // sample()'s candidates, reused
};

}  // namespace pareto::sampling
