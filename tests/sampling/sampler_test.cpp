// Each processor against its definition on small hand-made logit vectors, plus reproducibility
// and a goodness-of-fit test of the random draw.
#include "sampling/sampler.h"
#include "sampling/logprobs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

namespace pareto::sampling {
namespace {

std::map<int32_t, float> as_map(const Candidates& c) {
  std::map<int32_t, float> m;
  for (const auto& item : c.items) m[item.id] = item.logit;
  return m;
}

std::set<int32_t> ids(const Candidates& c) {
  std::set<int32_t> s;
  for (const auto& item : c.items) s.insert(item.id);
  return s;
}

std::vector<double> softmax(const std::vector<float>& logits) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(logits[i] - mx);
  for (auto& x : p) x /= sum;
  return p;
}

TEST(RepetitionPenalty, DividesPositiveAndMultipliesNegativeLogitsOfRecentTokens) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -0.25f};
  const float penalty = 1.5f;
  RepetitionPenalty rp(penalty, 3);
  const std::vector<int32_t> history = {2, 0, 1, 0};  // window of 3 keeps {0, 1, 0}: 2 has left
  Candidates c = Candidates::from_logits(logits);
  rp.apply(c, history);
  const auto m = as_map(c);
  EXPECT_FLOAT_EQ(m.at(0), logits[0] / penalty);  // counted twice, penalized once
  EXPECT_FLOAT_EQ(m.at(1), logits[1] * penalty);
  EXPECT_FLOAT_EQ(m.at(2), logits[2]);  // out of the window
  EXPECT_FLOAT_EQ(m.at(3), logits[3]);
  EXPECT_FLOAT_EQ(m.at(4), logits[4]);
}

TEST(RepetitionPenalty, ReadsOnlyTheHistoryItIsGiven) {
  // A rolled-back sequence passes its shorter history: nothing to undo.
  RepetitionPenalty rp(2.0f, 8);
  Candidates c = Candidates::from_logits(std::vector<float>{4.0f, 1.0f});
  rp.apply(c, std::vector<int32_t>{0});
  EXPECT_FLOAT_EQ(as_map(c).at(0), 2.0f);
  Candidates d = Candidates::from_logits(std::vector<float>{4.0f, 1.0f});
  rp.apply(d, {});
  EXPECT_FLOAT_EQ(as_map(d).at(0), 4.0f);
}

TEST(FrequencyPresencePenalty, SubtractsCountTimesFrequencyPlusPresenceOverTheWindow) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f};
  FrequencyPresencePenalty fp(0.5f, 0.25f, 4);
  const std::vector<int32_t> history = {3, 0, 1, 0, 0};  // window of 4: {0, 1, 0, 0}
  Candidates c = Candidates::from_logits(logits);
  fp.apply(c, history);
  const auto m = as_map(c);
  EXPECT_FLOAT_EQ(m.at(0), 2.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(m.at(1), -1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(m.at(2), 0.5f);
  EXPECT_FLOAT_EQ(m.at(3), 3.0f);  // left the window
}

TEST(LogitBias, AddsToTheNamedTokensWhateverTheOrder) {
  LogitBias bias({{1, 5.0f}, {3, -std::numeric_limits<float>::infinity()}});
  Candidates c = Candidates::from_logits(std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f});
  bias.apply(c, {});
  EXPECT_FLOAT_EQ(as_map(c).at(1), 4.0f);
  EXPECT_TRUE(std::isinf(as_map(c).at(3)));
  Candidates sorted = Candidates::from_logits(std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f});
  sorted.sort_descending();
  bias.apply(sorted, {});
  EXPECT_FLOAT_EQ(as_map(sorted).at(1), 4.0f);
}

TEST(SamplerChain, LogitBiasAndPenaltiesApplyToGreedyPicks) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.logit_bias = {{0, 10.0f}};
  auto chain = SamplerChain::from_params(params);
  EXPECT_EQ(chain.sample(std::vector<float>{1.0f, 3.0f, 2.0f}), 0);
  params.logit_bias = {};
  params.presence_penalty = 2.0f;
  auto penalized = SamplerChain::from_params(params);
  EXPECT_EQ(penalized.sample(std::vector<float>{1.0f, 3.0f, 2.0f}, std::vector<int32_t>{1}), 2);
}

TEST(TopK, KeepsTheKHighestLogitsWithTiesToLowerIds) {
  const std::vector<float> logits = {0.1f, 2.0f, -3.0f, 2.0f, 1.5f, 0.9f};
  TopK top_k(3);
  Candidates c = Candidates::from_logits(logits);
  top_k.apply(c, {});
  // Expected from the definition: order by (logit desc, id asc), take 3.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ASSERT_EQ(c.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(c.items[i].id, order[i]);
}

TEST(TopK, KLargerThanVocabularyOrZeroKeepsAll) {
  const std::vector<float> logits = {0.1f, 2.0f, -3.0f};
  for (int k : {0, 3, 10}) {
    Candidates c = Candidates::from_logits(logits);
    TopK(k).apply(c, {});
    EXPECT_EQ(c.items.size(), 3u) << "k=" << k;
  }
}

TEST(TopP, KeepsSmallestPrefixReachingTheMass) {
  const std::vector<float> logits = {1.0f, 3.0f, 0.0f, 2.0f, -1.0f};
  const auto p = softmax(logits);
  for (float top_p : {0.3f, 0.6f, 0.9f, 0.99f}) {
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    std::set<int32_t> expected;
    double mass = 0;
    for (int32_t id : order) {
      expected.insert(id);
      mass += p[id];
      if (mass >= top_p) break;
    }
    Candidates c = Candidates::from_logits(logits);
    TopP(top_p).apply(c, {});
    EXPECT_EQ(ids(c), expected) << "top_p=" << top_p;
  }
}

TEST(MinP, KeepsTokensAtLeastMinPTimesTheMostLikely) {
  const std::vector<float> logits = {1.0f, 3.0f, 0.0f, 2.0f, -1.0f, 2.9f};
  const auto p = softmax(logits);
  const double p_max = *std::max_element(p.begin(), p.end());
  for (float min_p : {0.05f, 0.2f, 0.5f, 0.95f}) {
    std::set<int32_t> expected;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] >= min_p * p_max) expected.insert(static_cast<int32_t>(i));
    }
    Candidates c = Candidates::from_logits(logits);
    MinP(min_p).apply(c, {});
    EXPECT_EQ(ids(c), expected) << "min_p=" << min_p;
  }
}

TEST(Temperature, DividesLogits) {
  const std::vector<float> logits = {1.0f, -2.0f, 0.5f};
  Candidates c = Candidates::from_logits(logits);
  Temperature(0.5f).apply(c, {});
  const auto m = as_map(c);
  for (int32_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(m.at(i), logits[i] / 0.5f);
}

TEST(GreedyPicker, PicksArgmaxAndLowestIdOnTies) {
  GreedyPicker greedy;
  Candidates a = Candidates::from_logits(std::vector<float>{0.0f, 5.0f, 1.0f});
  EXPECT_EQ(greedy.pick(a), 1);
  Candidates b = Candidates::from_logits(std::vector<float>{0.0f, 5.0f, 1.0f, 5.0f});
  EXPECT_EQ(greedy.pick(b), 1);
}

// The greedy chain's processed distribution is the argmax alone (lowest id on ties), with all
// the mass, whatever the buffer held before (process() into a reused Candidates).
TEST(SamplerChain, GreedyDistributionIsTheArgmaxWithTiesToLowerIds) {
  SamplingParams params;
  params.temperature = 0.0f;
  const auto chain = SamplerChain::from_params(params);
  Candidates reused = Candidates::from_logits(std::vector<float>{9.0f, 9.0f});
  reused.sorted = true;
  const std::vector<float> logits = {0.5f, 4.0f, -1.0f, 4.0f, 3.0f};
  chain.process(logits, {}, reused);
  ASSERT_EQ(reused.items.size(), 1u);
  EXPECT_EQ(reused.items[0].id, 1);
  EXPECT_EQ(reused.items[0].prob, 1.0f);
  const Candidates fresh = chain.process(std::vector<float>{0.0f, -2.0f, 7.0f});
  ASSERT_EQ(fresh.items.size(), 1u);
  EXPECT_EQ(fresh.items[0].id, 2);
}

TEST(SamplerChain, ZeroTemperatureIsGreedyAfterPenalty) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.repeat_penalty = 4.0f;
  auto chain = SamplerChain::from_params(params);
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  EXPECT_EQ(chain.sample(logits), 1);
  const std::vector<int32_t> history = {1};  // 3 / 4 = 0.75 drops below 2.0
  EXPECT_EQ(chain.sample(logits, history), 2);
}

TEST(SamplerChain, DefaultParamsMatchDocumentedDefaults) {
  const SamplingParams p;
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.repeat_last_n, 64);
  auto chain = SamplerChain::from_params(p);
  std::vector<std::string_view> names;
  for (const auto& proc : chain.processors()) names.push_back(proc->name());
  EXPECT_EQ(names, (std::vector<std::string_view>{"top_k", "top_p", "min_p", "temperature"}));
}

std::vector<int32_t> draw(uint64_t seed, int n) {
  SamplingParams params;
  params.seed = seed;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.temperature = 1.0f;
  auto chain = SamplerChain::from_params(params);
  const std::vector<float> flat(64, 0.0f);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(chain.sample(flat));
  return out;
}

TEST(RandomPicker, SameSeedSameDrawsDifferentSeedDifferentDraws) {
  EXPECT_EQ(draw(1234, 200), draw(1234, 200));
  EXPECT_NE(draw(1234, 200), draw(1235, 200));  // equal by chance with probability 64^-200
}

TEST(SamplerChain, RandomDrawsStayWithinTheFilteredCandidates) {
  // top_k = 2 leaves ids 3 and 5 (the two highest logits); no draw may land elsewhere.
  const std::vector<float> logits = {0.5f, 0.1f, 0.4f, 2.0f, 0.3f, 1.9f};
  SamplingParams params;
  params.top_k = 2;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.temperature = 5.0f;  // flat enough that both survivors are drawn
  auto chain = SamplerChain::from_params(params);
  std::set<int32_t> drawn;
  for (int i = 0; i < 500; ++i) drawn.insert(chain.sample(logits));
  EXPECT_EQ(drawn, (std::set<int32_t>{3, 5}));
}

// Temperature sampling must draw from softmax(logits / T). Pearson's chi-square over 60000 draws
// (fixed seed) against the expected counts; 5 degrees of freedom, critical value 20.515 at
// significance 0.001.
TEST(RandomPicker, TemperatureDrawsFollowTheSoftmaxDistribution) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.4f};
  const float temperature = 0.7f;
  SamplingParams params;
  params.seed = 42;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.temperature = temperature;
  auto chain = SamplerChain::from_params(params);
  std::vector<float> scaled = logits;
  for (auto& l : scaled) l /= temperature;
  const auto p = softmax(scaled);

  const int n = 60000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts.at(static_cast<size_t>(chain.sample(logits)));
  double chi2 = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double expected = n * p[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  EXPECT_LT(chi2, 20.515) << "draws do not follow softmax(logits / T)";
}

}  // namespace
}  // namespace pareto::sampling

namespace pareto::sampling {
namespace {

TEST(TokenLogprobs, LogSoftmaxOfTheChosenTokenAndTheTopAlternativesInOrder) {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  const auto expected = [&](int id) { return static_cast<float>(logits[id] - std::log(z)); };
  const TokenLogprobs lp = token_logprobs(logits, 4, 3);
  EXPECT_EQ(lp.token, 4);
  EXPECT_FLOAT_EQ(lp.logprob, expected(4));
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);  // ties: the lower id first
  EXPECT_EQ(lp.top[1].first, 3);
  EXPECT_EQ(lp.top[2].first, 0);
  EXPECT_FLOAT_EQ(lp.top[2].second, expected(0));
  double mass = 0;
  for (int id = 0; id < 5; ++id) mass += std::exp(token_logprobs(logits, id, 0).logprob);
  EXPECT_NEAR(mass, 1.0, 1e-6);
  EXPECT_TRUE(token_logprobs(logits, 0, 0).top.empty());
  EXPECT_EQ(token_logprobs(logits, 0, 20).top.size(), 5u);  // at most the vocabulary
}

}  // namespace
}  // namespace pareto::sampling
