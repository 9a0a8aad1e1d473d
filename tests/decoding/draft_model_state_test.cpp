// The draft model drafter's state, with a real model (stories260K): its adaptive length across
// requests (what one request measured, the cost of a draft token and of verifying n entries and
// the calibration of the draft's confidence, is where the next request of the engine starts), and
// layer skip drafting on a fork of the target's own cache, which it leaves as it was.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "base/thread_pool.h"
#include "decoding/draft_length.h"
#include "decoding/draft_model.h"
#include "decoding/layer_selection.h"
#include "decoding/stories_draft_model.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::decoding {
namespace draft_model_state_test {
namespace {

using test_models::load_stories;
using test_models::resources_for;

SequenceState greedy_request(int n_vocab) {
  // A short prompt (stories260K: 512 ids).
  return test_models::greedy_request({1, 403, 407, 261, 378, 216}, n_vocab);
}

TEST(DraftModelDrafter, ARequestStartsFromWhatEarlierRequestsMeasured) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  const DraftModelResources r = resources_for(*m, pool);
  const int n_vocab = m->config().n_vocab;

  DraftLengthMemory memory;
  {
    // An earlier request measured verifications where one more entry costs as much as a whole
    // step and a draft token a second: no second draft token can pay.
    DraftModelStats& earlier = memory.model_stats_for("draft-adaptive");
    for (int i = 0; i < 4; ++i) earlier.cost.add(1 + i, 1e-3 * (1 + i));
    earlier.draft_token_seconds = 1.0;
  }
  const SequenceState s = greedy_request(n_vocab);
  DraftModelDrafter warm(r, /*adaptive=*/true, &memory);
  Draft d;
  warm.draft(s, 8, d);
  EXPECT_EQ(d.tokens.size(), 1u) << "the shared estimates stop the draft after its first token";

  // Without them (or under another drafter's name) a request measures its own first: its first
  // drafts are of the longest length.
  DraftModelDrafter cold(r, /*adaptive=*/true);
  Draft c;
  cold.draft(s, 8, c);
  EXPECT_EQ(c.tokens.size(), 8u);
  DraftModelDrafter fixed(r, /*adaptive=*/false, &memory);
  Draft f;
  fixed.draft(s, 8, f);
  EXPECT_EQ(f.tokens.size(), 8u);
  EXPECT_EQ(f.tokens, c.tokens);  // the same draft model, the same greedy chain
  EXPECT_EQ(d.tokens[0], c.tokens[0]);

  // What a request measures is left for the next: the warm drafter's verification moved the
  // shared calibration.
  const double accepted_before = memory.model_stats_for("draft-adaptive").accepted;
  SequenceState next = greedy_request(n_vocab);
  next.tokens.push_back(d.tokens[0]);
  next.tokens.push_back(d.tokens[0]);
  warm.verified(next, {1, 1, 2e-3});
  EXPECT_GT(memory.model_stats_for("draft-adaptive").accepted, accepted_before);
}

// Drafter::catch_up takes in all but the pending token (the bandit times it apart from drafts):
// the drafter then lags by that one token only, and drafts what one that never caught up drafts.
// A layer-skip drafter (on the target's cache) has nothing to catch up.
TEST(DraftModelDrafter, CatchUpTakesInAllButThePendingToken) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  DraftModelResources r = resources_for(*m, pool);
  r.forward.batch_invariant = true;  // the same rows whether fed in one forward or two
  SequenceState s = greedy_request(m->config().n_vocab);
  s.tokens.insert(s.tokens.end(), {285, 270, 349, 306, 289, 13, 294, 378, 261, 407, 403, 216});
  DraftModelDrafter caught(r, /*adaptive=*/false), direct(r, /*adaptive=*/false);
  EXPECT_EQ(caught.lag(s), static_cast<int>(s.tokens.size()));
  EXPECT_GT(caught.catch_up(s), 0.0);
  EXPECT_EQ(caught.lag(s), 1);
  EXPECT_EQ(caught.catch_up(s), 0.0);  // nothing left to do
  Draft a, b;
  caught.draft(s, 6, a);
  direct.draft(s, 6, b);
  EXPECT_EQ(a.tokens.size(), 6u);
  EXPECT_EQ(a.tokens, b.tokens);
  // No room to draft after it (the sequence fills the draft's context): nothing taken in.
  DraftModelResources small = r;
  small.context_length = static_cast<int>(s.tokens.size());
  DraftModelDrafter full(small, /*adaptive=*/false);
  EXPECT_EQ(full.catch_up(s), 0.0);
  EXPECT_EQ(full.lag(s), static_cast<int>(s.tokens.size()));
  DraftModelDrafter skip(r, std::vector<uint8_t>{0, 1, 0, 0, 0});
  EXPECT_EQ(skip.lag(s), 0);
  EXPECT_EQ(skip.catch_up(s), 0.0);
}

// Every entry of every (layer, head) of `cache`, keys and values in f32, with their positions.
std::vector<float> contents(const kv::KvCache& cache) {
  const kv::KvShape shape = cache.shape();
  std::vector<float> all;
  for (int l = 0; l < shape.n_layers; ++l) {
    for (int g = 0; g < shape.n_kv_heads; ++g) {
      const int len = cache.length(l, g);
      std::vector<float> k(static_cast<size_t>(len * shape.head_dim)), v(k.size());
      std::vector<int32_t> pos(static_cast<size_t>(len));
      cache.gather(l, g, k.data(), v.data(), pos.data());
      all.insert(all.end(), k.begin(), k.end());
      all.insert(all.end(), v.begin(), v.end());
      for (int32_t p : pos) all.push_back(static_cast<float>(p));
    }
  }
  return all;
}

TEST(DraftModelDrafter, LayerSkipDraftsOnAForkOfTheTargetsCacheAndLeavesItAsItWas) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const DraftModelResources self = resources_for(*m, pool);  // the target drafts for itself
  // The sequence: its prompt's entries in the target's cache (a pool of its own, F16), all but
  // the pending last token, as the engine leaves it between steps.
  auto target_pool =
      std::make_shared<kv::KvPool>(m->kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  SequenceState s = greedy_request(m->config().n_vocab);
  s.cache = kv::KvCache(target_pool, 256);
  std::vector<model::BatchEntry> prompt;
  for (size_t i = 0; i + 1 < s.tokens.size(); ++i) {
    prompt.push_back({s.tokens[i], static_cast<int32_t>(i), 0, i + 2 == s.tokens.size()});
  }
  model::ForwardWorkspace ws;
  std::vector<float> logits;
  kv::KvCache* caches[] = {&s.cache};
  model::ResidualCapture captured;  // the last prompt token's stream, as a verification gives it
  captured.rows = {static_cast<int32_t>(prompt.size()) - 1};
  model::ForwardOptions capture;
  capture.residuals = &captured;
  ASSERT_TRUE(m->forward(prompt, caches, logits, ws, pool, capture).has_value());
  const std::vector<float> before = contents(s.cache);
  const int64_t pages = target_pool->pages_in_use();

  std::vector<uint8_t> skip(static_cast<size_t>(m->config().n_layers), 0);
  skip[1] = 1;
  DraftModelDrafter drafter(self, skip);
  EXPECT_EQ(drafter.lag(s), 0) << "nothing of its own to catch up";
  Draft first, again;
  drafter.draft(s, 6, first);
  drafter.draft(s, 6, again);
  EXPECT_FALSE(first.tokens.empty());
  EXPECT_EQ(first.tokens, again.tokens) << "a draft leaves nothing behind for the next";
  EXPECT_EQ(contents(s.cache), before) << "the target's entries changed";
  EXPECT_EQ(s.cache.n_tokens(), static_cast<int>(s.tokens.size()) - 1);
  EXPECT_EQ(target_pool->pages_in_use(), pages) << "the fork's pages were not given back";
  EXPECT_EQ(self.kv_pool->pages_in_use(), 0) << "layer skip needs no cache of its own";

  // CLaSp: a verification's residual stream re-chooses the skipped layers (as many as before),
  // starting here from another set than the one it will choose.
  const model::ModelConfig& c = m->config();
  const std::vector<uint8_t> chosen = choose_skipped_layers(captured.values, c.n_layers, c.dim, 1);
  std::vector<uint8_t> other(chosen.size(), 0);
  other[chosen[1] != 0 ? 2 : 1] = 1;
  DraftModelDrafter reselecting(self, other);
  EXPECT_TRUE(reselecting.wants_residuals());
  reselecting.verified(s, {1, 0, 1e-3, captured.values});
  EXPECT_EQ(
      std::vector<uint8_t>(reselecting.skip_layers().begin(), reselecting.skip_layers().end()),
      chosen);
  Draft with_chosen;  // drafting with the new set leaves the target's cache as it was too
  reselecting.draft(s, 6, with_chosen);
  EXPECT_FALSE(with_chosen.tokens.empty());
  EXPECT_EQ(contents(s.cache), before);
  EXPECT_EQ(target_pool->pages_in_use(), pages);
}

}  // namespace
}  // namespace draft_model_state_test
}  // namespace pareto::decoding
