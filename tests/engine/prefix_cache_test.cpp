// The engine's prefix cache on stories260K: a request sharing a long prefix with an earlier one
// evaluates only its new tokens (counted), and its output equals a cold run's; also with
// speculative decoding, sampling, and a pool too small to keep everything.
#include "pareto/pareto.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "test_util.h"

namespace pareto {
namespace prefix_cache_test {
namespace {

std::unique_ptr<Engine> load(bool prefix_cache, int64_t kv_tokens = 0) {
  LoadOptions o;
  o.n_threads = 2;
  o.batch_invariant = true;  // the cached KV is bit for bit what a cold evaluation stores
  o.prefix_cache = prefix_cache;
  o.kv_cache_tokens = kv_tokens;
  o.max_sequences = 4;
  auto e = Engine::load(test::shared_path("models/stories260K/stories260K.gguf"), o);
  EXPECT_TRUE(e) << e.error().message;
  return e ? std::move(*e) : nullptr;
}

// A prompt of `n` tokens: a fixed long "system prompt" head, then a tail of its own.
std::vector<int32_t> prompt(Engine& e, int n, const std::string& tail) {
  std::string head;
  for (int i = 0; head.empty() || static_cast<int>(e.tokenize(head).size()) < n; ++i) {
    head += "Once upon a time there was a little girl named Lily who loved to play. ";
  }
  std::vector<int32_t> t = e.tokenize(head);
  t.resize(static_cast<size_t>(n));
  const std::vector<int32_t> more = e.tokenize(tail, false);
  t.insert(t.end(), more.begin(), more.end());
  return t;
}

GenerateParams greedy(int n) {
  GenerateParams p;
  p.temperature = 0;
  p.max_tokens = n;
  return p;
}

TEST(PrefixCache, ASharedPrefixIsEvaluatedOnceAndTheOutputEqualsAColdRun) {
  auto warm = load(true);
  auto cold = load(false);
  ASSERT_TRUE(warm && cold);
  const auto first = prompt(*warm, 200, " She saw a dog.");
  const auto second = prompt(*warm, 200, " The sun was hot and");
  auto a = warm->generate_from_tokens(first, greedy(24));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->stats.cached_prompt_tokens, 0);

  const int64_t evaluated_before = warm->counters().prompt_tokens;
  auto b = warm->generate_from_tokens(second, greedy(24));
  ASSERT_TRUE(b) << b.error().message;
  // Exactly the shared tokens (the 200-token head, and any first tokens the tails have in
  // common): 12 whole 16-token blocks, then the rest to the token.
  const auto shared = static_cast<int>(
      std::mismatch(first.begin(), first.end(), second.begin(), second.end()).first -
      first.begin());
  ASSERT_GE(shared, 200);
  ASSERT_LT(shared, 208);
  EXPECT_EQ(b->stats.cached_prompt_tokens, shared);
  EXPECT_EQ(warm->counters().prompt_tokens - evaluated_before,
            static_cast<int64_t>(second.size()) - shared);
  EXPECT_EQ(warm->counters().prefix_cache_hit_tokens, shared);

  auto b_cold = cold->generate_from_tokens(second, greedy(24));
  ASSERT_TRUE(b_cold);
  EXPECT_EQ(b->tokens, b_cold->tokens);
  EXPECT_EQ(b->text, b_cold->text);

  // The same prompt again reuses all of it but its last token, whose logits start the output.
  auto again = warm->generate_from_tokens(second, greedy(24));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->tokens, b_cold->tokens);
  EXPECT_EQ(again->stats.cached_prompt_tokens, static_cast<int>(second.size()) - 1);
}

TEST(PrefixCache, SpeculationAndSamplingAreUnchangedByCachedPrefixes) {
  auto warm = load(true);
  auto cold = load(false);
  ASSERT_TRUE(warm && cold);
  const auto p = prompt(*warm, 100, " Lily said");
  GenerateParams sampled;
  sampled.max_tokens = 32;
  sampled.seed = 99;
  GenerateParams spec = greedy(32);
  spec.strategy = "ngram";
  for (const GenerateParams& params : {sampled, spec}) {
    ASSERT_TRUE(warm->generate_from_tokens(p, params));  // fills the cache
    auto hit = warm->generate_from_tokens(p, params);
    auto ref = cold->generate_from_tokens(p, params);
    ASSERT_TRUE(hit && ref);
    EXPECT_GT(hit->stats.cached_prompt_tokens, 0);
    EXPECT_EQ(hit->tokens, ref->tokens) << params.strategy;
  }
}

TEST(PrefixCache, ASmallPoolEvictsCachedBlocksInsteadOfFailingRequests) {
  // Room for one 256-token sequence: every request needs the pages the cache holds.
  auto e = load(true, /*kv_tokens=*/256);
  ASSERT_TRUE(e);
  for (int i = 0; i < 6; ++i) {
    auto g = e->generate_from_tokens(prompt(*e, 120 + 7 * i, " and then " + std::to_string(i)),
                                     greedy(40));
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->stop_reason == StopReason::kError, false);
  }
  const EngineCounters c = e->counters();
  EXPECT_LE(c.kv_pages_in_use, c.kv_pages_total);
  EXPECT_EQ(c.kv_pages_in_use, c.kv_pages_cached);  // idle: only cached blocks remain
}

}  // namespace
}  // namespace prefix_cache_test
}  // namespace pareto
