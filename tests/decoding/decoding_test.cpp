// The decoding loop against a tiny deterministic fake model, so stop rules and batching are
// checked independently of real weights.
#include "decoding/decoding.h"

#include <gtest/gtest.h>

#include <memory>

namespace pareto::decoding {
namespace {

constexpr int kVocab = 16;

// The next token after t is (3 t + 1) mod 16, by a clear logit margin; it records each batch size.
int32_t successor(int32_t t) {
  return (3 * t + 1) % kVocab;
}

class FakeModel final : public model::Model {
 public:
  FakeModel()
      : Model(std::make_shared<const formats::ModelFile>(), model::ModelConfig{.n_vocab = kVocab}) {
  }

  Status forward(std::span<const int32_t> tokens, kv::KvCache& cache, std::vector<float>& logits,
                 ThreadPool& /*pool*/, const model::ForwardOptions& /*options*/) const override {
    if (tokens.empty()) return make_error("fake: empty batch");
    if (cache.n_tokens() + static_cast<int>(tokens.size()) > cache.capacity()) {
      return make_error("fake: cache capacity exceeded");
    }
    batches.push_back(static_cast<int>(tokens.size()));
    cache.advance(static_cast<int>(tokens.size()));
    logits.assign(kVocab, 1.0f);
    logits[static_cast<size_t>(successor(tokens.back()))] = 5.0f;
    return ok();
  }

  mutable std::vector<int> batches;
};

struct Fixture {
  explicit Fixture(int capacity) : cache(kv::KvShape{1, 1, 1, capacity}) {
    params.temperature = 0.0f;
  }
  Result<GenerateResult> run(const std::vector<int32_t>& prompt, GenerateOptions options) {
    sampler = std::make_unique<sampling::SamplerChain>(sampling::SamplerChain::from_params(params));
    Autoregressive strategy(model, cache, *sampler, pool);
    return generate(strategy, prompt, options);
  }
  FakeModel model;
  kv::KvCache cache;
  ThreadPool pool{1};
  sampling::SamplingParams params;
  std::unique_ptr<sampling::SamplerChain> sampler;
};

std::vector<int32_t> expected_chain(int32_t last, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(last = successor(last));
  return out;
}

TEST(Autoregressive, PrefillsInOneBatchThenOneTokenPerForward) {
  Fixture f(64);
  GenerateOptions options;
  options.max_tokens = 5;
  auto r = f.run({1, 2, 3}, options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tokens, expected_chain(3, 5));
  EXPECT_EQ(r->stop_reason, StopReason::kMaxTokens);
  // The 5th token is sampled but never evaluated.
  EXPECT_EQ(f.model.batches, (std::vector<int>{3, 1, 1, 1, 1}));
  EXPECT_EQ(f.cache.n_tokens(), 3 + 4);
}

TEST(Generate, StopsAtEndOfGenerationWithoutEmittingIt) {
  Fixture f(64);
  const auto chain = expected_chain(0, 20);
  const int32_t eog = chain[3];
  GenerateOptions options;
  options.max_tokens = 20;
  options.is_end_of_generation = [&](int32_t t) { return t == eog; };
  auto r = f.run({0}, options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->stop_reason, StopReason::kEndOfGeneration);
  EXPECT_EQ(r->tokens, std::vector<int32_t>(chain.begin(), chain.begin() + 3));
}

TEST(Generate, StopsWhenTheContextIsFull) {
  const int capacity = 8;
  Fixture f(capacity);
  GenerateOptions options;
  options.max_tokens = -1;
  auto r = f.run({1, 2, 3}, options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->stop_reason, StopReason::kContextFull);
  // Every position gets evaluated, plus the final sampled token that needs no slot.
  EXPECT_EQ(r->tokens.size(), static_cast<size_t>(capacity - 3 + 1));
  EXPECT_EQ(f.cache.n_tokens(), capacity);
}

TEST(Generate, PromptLongerThanContextIsAClearError) {
  Fixture f(8);
  auto r = f.run(std::vector<int32_t>(10, 1), GenerateOptions{});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("prompt has 10 tokens, context is 8"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(f.model.batches.empty());
}

TEST(Generate, EmptyPromptIsAnError) {
  Fixture f(8);
  auto r = f.run({}, GenerateOptions{});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("empty"), std::string::npos) << r.error().message;
}

TEST(Generate, CallbackStreamsEachTokenAndCanStop) {
  Fixture f(64);
  std::vector<int32_t> streamed;
  GenerateOptions options;
  options.max_tokens = 10;
  options.on_token = [&](int32_t t) {
    streamed.push_back(t);
    return streamed.size() < 4;
  };
  auto r = f.run({7}, options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->stop_reason, StopReason::kCallback);
  EXPECT_EQ(streamed, expected_chain(7, 4));
  EXPECT_EQ(r->tokens, streamed);
}

TEST(Generate, ZeroMaxTokensOnlyPrefills) {
  Fixture f(64);
  GenerateOptions options;
  options.max_tokens = 0;
  auto r = f.run({1, 2}, options);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->tokens.empty());
  EXPECT_EQ(f.model.batches, (std::vector<int>{2}));
}

TEST(Generate, RepetitionPenaltySeesThePrompt) {
  // With a penalty large enough to sink the model's favourite, a prompt containing that favourite
  // must change the first pick: proof that prompt tokens enter the sampler's history.
  Fixture f(64);
  f.params.repeat_penalty = 100.0f;
  GenerateOptions options;
  options.max_tokens = 1;
  const int32_t favourite = successor(2);
  auto r = f.run({favourite, 2}, options);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->tokens.size(), 1u);
  EXPECT_NE(r->tokens[0], favourite);
}

}  // namespace
}  // namespace pareto::decoding
