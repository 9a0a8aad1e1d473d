// Decoding strategies through their interface: what they propose for a sequence and what they
// accept from logit rows; the registry by name.
#include <gtest/gtest.h>

#include "decoding/autoregressive.h"
#include "decoding/strategy.h"

namespace pareto::decoding {
namespace decoding_test {
namespace {

constexpr int kVocab = 8;

SequenceState greedy_sequence(std::vector<int32_t> tokens, int in_cache, float penalty = 1.0f) {
  SequenceState s;
  s.tokens = std::move(tokens);
  s.n_prompt = static_cast<int>(s.tokens.size());
  s.n_vocab = kVocab;
  s.cache = kv::KvCache(kv::KvShape{1, 1, 4, 64});
  s.cache.set_n_tokens(in_cache);
  sampling::SamplingParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = penalty;
  s.sampler = sampling::SamplerChain::from_params(p);
  return s;
}

TEST(Autoregressive, ProposesThePendingTokenAtItsPosition) {
  Autoregressive ar;
  const SequenceState s = greedy_sequence({5, 6, 7}, 2);
  std::vector<model::BatchEntry> entries;
  ar.propose(s, 4, entries);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].token, 7);
  EXPECT_EQ(entries[0].position, 2);
  EXPECT_TRUE(entries[0].logits);
  EXPECT_EQ(entries[0].parent, model::kCausal);
}

TEST(Autoregressive, AcceptsTheArgmaxOfTheLastRow) {
  Autoregressive ar;
  SequenceState s = greedy_sequence({1, 2}, 2);
  std::vector<float> rows(2 * kVocab, 0.0f);
  rows[3] = 9.0f;           // an earlier row: ignored
  rows[kVocab + 6] = 2.0f;  // the last row
  EXPECT_EQ(ar.accept(s, rows), 1);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{1, 2, 6}));
  EXPECT_EQ(s.generated().size(), 1u);
}

TEST(Autoregressive, TheSamplerReadsTheSequenceHistory) {
  // With a strong repetition penalty a token already in the sequence loses to the runner-up.
  Autoregressive ar;
  SequenceState s = greedy_sequence({4}, 1, 10.0f);
  std::vector<float> row(kVocab, 0.0f);
  row[4] = 3.0f;
  row[5] = 2.0f;
  ar.accept(s, row);
  EXPECT_EQ(s.tokens.back(), 5);
  // Rolled back (history shortened), the same row picks 4 again: no state to undo.
  SequenceState fresh = greedy_sequence({1}, 1, 10.0f);
  ar.accept(fresh, row);
  EXPECT_EQ(fresh.tokens.back(), 4);
}

TEST(StrategyRegistry, MakesByNameAndListsTheValidNames) {
  auto ar = make_strategy("autoregressive");
  ASSERT_TRUE(ar.has_value());
  EXPECT_EQ((*ar)->name(), "autoregressive");
  auto bad = make_strategy("medusa");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("valid: autoregressive, ngram"), std::string::npos);
  // A list of drafters is a bandit over them; arms must be drafters.
  auto list = make_strategy("ngram,sam");
  ASSERT_TRUE(list.has_value()) << list.error().message;
  EXPECT_EQ((*list)->name(), "bandit");
  EXPECT_FALSE(make_strategy("ngram,bandit").has_value());
  EXPECT_FALSE(make_strategy("ngram,medusa").has_value());
  EXPECT_FALSE(make_strategy("ngram,draft").has_value());  // no draft model here
  auto ngram = make_strategy("ngram");
  ASSERT_TRUE(ngram.has_value());
  EXPECT_EQ((*ngram)->name(), "ngram");
  EXPECT_EQ(strategy_names(), (std::vector<std::string_view>{"autoregressive", "ngram", "sam",
                                                             "draft", "draft-adaptive", "layerskip",
                                                             "tree", "draft-sam", "bandit"}));
}

}  // namespace
}  // namespace decoding_test
}  // namespace pareto::decoding
