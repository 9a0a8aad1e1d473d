// The public API end to end on stories260K, against llama.cpp's reference outputs.
#include "pareto/pareto.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace pareto {
namespace {

nlohmann::json first_oracle_case() {
  std::ifstream in(test::shared_path("oracle/stories260K.llamacpp.json"));
  return nlohmann::json::parse(in).at(0);
}

std::unique_ptr<Engine> load_stories(const LoadOptions& options = {}) {
  auto engine = Engine::load(test::shared_path("models/stories260K/stories260K.gguf"), options);
  EXPECT_TRUE(engine) << engine.error().message;
  return engine ? std::move(*engine) : nullptr;
}

GenerateParams greedy(int n) {
  GenerateParams p;
  p.temperature = 0.0f;
  p.max_tokens = n;
  return p;
}

TEST(Engine, GreedyGenerationMatchesLlamaCpp) {
  const auto oracle = first_oracle_case();
  LoadOptions options;
  options.n_threads = 2;
  auto engine = load_stories(options);
  ASSERT_TRUE(engine);
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int32_t>>();
  std::string streamed;
  auto out = engine->generate(oracle.at("prompt").get<std::string>(),
                              greedy(static_cast<int>(expected.size())),
                              [&](std::string_view text, int32_t) {
                                streamed += text;
                                return true;
                              });
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->prompt_tokens, oracle.at("prompt_tokens").get<std::vector<int32_t>>());
  EXPECT_EQ(out->tokens, expected);
  EXPECT_EQ(out->text, oracle.at("greedy_text").get<std::string>());
  EXPECT_EQ(streamed, out->text);
  EXPECT_EQ(out->stats.prompt_tokens, static_cast<int>(out->prompt_tokens.size()));
  EXPECT_EQ(out->stats.generated_tokens, static_cast<int>(expected.size()));
}

// Online-softmax attention rounds differently but must not change the greedy tokens here.
TEST(Engine, FlashAttentionGivesTheSameGreedyTokens) {
  const auto oracle = first_oracle_case();
  LoadOptions options;
  options.n_threads = 2;
  options.flash_attention = true;
  auto engine = load_stories(options);
  ASSERT_TRUE(engine);
  const auto expected = oracle.at("greedy_tokens").get<std::vector<int32_t>>();
  auto out = engine->generate(oracle.at("prompt").get<std::string>(),
                              greedy(static_cast<int>(expected.size())));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->tokens, expected);
}

TEST(Engine, SameSeedReproducesSampling) {
  auto engine = load_stories();
  ASSERT_TRUE(engine);
  GenerateParams p;
  p.max_tokens = 32;
  p.temperature = 1.0f;
  p.seed = 7;
  auto a = engine->generate("Once upon a time", p);
  auto b = engine->generate("Once upon a time", p);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->tokens, b->tokens);
}

TEST(Engine, PromptLongerThanContextIsAClearError) {
  LoadOptions options;
  options.context_length = 8;
  auto engine = load_stories(options);
  ASSERT_TRUE(engine);
  const std::string prompt = "Once upon a time there was a little dog who liked to run in the park";
  const size_t n = engine->tokenize(prompt).size();
  ASSERT_GT(n, 8u);
  auto out = engine->generate(prompt, greedy(4));
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find(str_cat("prompt has ", n, " tokens, context is 8")),
            std::string::npos)
      << out.error().message;
}

TEST(Engine, VocabOnlyLoadTokenizesButDoesNotGenerate) {
  LoadOptions options;
  options.vocab_only = true;
  auto engine = Engine::load(test::shared_path("vocab/ggml-vocab-llama-spm.gguf"), options);
  ASSERT_TRUE(engine) << engine.error().message;
  EXPECT_FALSE((*engine)->tokenize("Hello world").empty());
  auto out = (*engine)->generate("Hello", greedy(1));
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("vocab-only"), std::string::npos) << out.error().message;
}

TEST(Engine, VocabularyOnlyFileCannotBeLoadedForGeneration) {
  auto engine = Engine::load(test::shared_path("vocab/ggml-vocab-llama-spm.gguf"));
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("no tensors"), std::string::npos) << engine.error().message;
}

TEST(Engine, MissingFileNamesThePath) {
  auto engine = Engine::load("/nonexistent/model.gguf");
  ASSERT_FALSE(engine);
  EXPECT_NE(engine.error().message.find("/nonexistent/model.gguf"), std::string::npos)
      << engine.error().message;
}

TEST(Engine, SamCorpusThatCannotBeReadNamesTheFile) {
  for (const std::string& bad : {std::string("/nonexistent/corpus.py"), test::shared_dir()}) {
    LoadOptions o;
    o.sam_corpus_files = {test::shared_path("workloads/code.jsonl"), bad};
    auto engine = Engine::load(test::shared_path("models/stories260K/stories260K.gguf"), o);
    ASSERT_FALSE(engine) << bad;
    EXPECT_NE(engine.error().message.find("sam corpus " + bad), std::string::npos)
        << engine.error().message;
  }
  LoadOptions o;
  o.sam_corpus_files = {test::shared_path("workloads/stories.jsonl")};
  auto engine = Engine::load(test::shared_path("models/stories260K/stories260K.gguf"), o);
  ASSERT_TRUE(engine) << engine.error().message;
}

}  // namespace
}  // namespace pareto
