// The draft model drafter's adaptive length across requests: what one request measured (the cost
// of a draft token, of verifying n entries, the calibration of the draft's confidence) is where
// the next request of the engine starts (DraftLengthMemory), instead of a few fixed-length steps.
#include <gtest/gtest.h>

#include <memory>

#include "base/thread_pool.h"
#include "decoding/draft_length.h"
#include "decoding/draft_model.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::decoding {
namespace draft_model_memory_test {
namespace {

std::unique_ptr<model::Model> load_stories() {
  auto file = formats::read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(file.has_value()) << file.error().message;
  if (!file) return nullptr;
  auto m = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << m.error().message;
  return m ? std::move(*m) : nullptr;
}

SequenceState greedy_request(int n_vocab) {
  SequenceState s;
  s.tokens = {1, 403, 407, 261, 378, 216};  // a short prompt (stories260K: 512 ids)
  s.n_prompt = static_cast<int>(s.tokens.size());
  s.n_vocab = n_vocab;
  sampling::SamplingParams p;
  p.temperature = 0.0f;
  s.sampler = sampling::SamplerChain::from_params(p);
  return s;
}

TEST(DraftModelDrafter, ARequestStartsFromWhatEarlierRequestsMeasured) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  DraftModelResources r;
  r.model = m.get();
  r.kv_pool = std::make_shared<kv::KvPool>(m->kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  r.pool = &pool;
  r.context_length = 256;
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

}  // namespace
}  // namespace draft_model_memory_test
}  // namespace pareto::decoding
