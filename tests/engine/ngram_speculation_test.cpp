// Prompt-lookup (n-gram) speculation end to end on stories260K: greedy output equals plain greedy
// output token for token (batch-invariant numerics, every KV storage type), in fewer engine steps
// (drafts were accepted: the test fails if the drafter never pays); the draft search itself.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <utility>

#include "decoding/ngram.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "test_util.h"

namespace pareto::engine {
namespace {

TEST(NgramDraft, ContinuesTheLatestOccurrenceOfTheLongestSuffix) {
  std::vector<int32_t> draft;
  // Last 2 tokens (7, 8) occur at 1 and 5; the latest (5) is followed by 9, 7, 8.
  decoding::find_ngram_draft(std::vector<int32_t>{1, 7, 8, 2, 3, 7, 8, 9, 7, 8}, 3, 4, draft);
  EXPECT_EQ(draft, (std::vector<int32_t>{9, 7, 8}));
  // Limited to max_tokens.
  decoding::find_ngram_draft(std::vector<int32_t>{5, 6, 1, 2, 3, 4, 5, 6}, 2, 3, draft);
  EXPECT_EQ(draft, (std::vector<int32_t>{1, 2, 3}));
  // Only a 1-gram matches.
  decoding::find_ngram_draft(std::vector<int32_t>{4, 9, 1, 2, 4}, 3, 8, draft);
  EXPECT_EQ(draft, (std::vector<int32_t>{9, 1, 2, 4}));
  // No earlier occurrence; no room.
  decoding::find_ngram_draft(std::vector<int32_t>{1, 2, 3}, 3, 8, draft);
  EXPECT_TRUE(draft.empty());
  decoding::find_ngram_draft(std::vector<int32_t>{1, 1, 1}, 3, 0, draft);
  EXPECT_TRUE(draft.empty());
}

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog ran to the park and",
                                           "Lily", "One day, a big red ball"};

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;  // per prompt
  int steps = 0;
};

// Each prompt alone (or all together), greedy, `max_tokens` tokens, with `strategy`.
Outcome run(Session& session, const std::string& strategy, kv::KvType type, int max_sequences) {
  SchedulerOptions o;
  o.max_sequences = max_sequences;
  o.forward.batch_invariant = true;
  o.key_type = o.value_type = type;
  auto scheduler = Scheduler::create(session.model(), session.tokenizer(), session.pool(), o);
  EXPECT_TRUE(scheduler.has_value()) << (scheduler ? "" : scheduler.error().message);
  Outcome r;
  if (!scheduler) return r;
  RequestParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  p.strategy = strategy;
  std::map<uint64_t, RequestResult> done;
  std::vector<uint64_t> ids;
  for (const std::string& prompt : kPrompts) {
    RequestCallbacks cb;
    cb.on_done = [&done](const RequestResult& res) { done[res.id] = res; };
    auto id = (*scheduler)->submit(session.tokenizer().encode(prompt, true), p, std::move(cb));
    EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
    if (id) ids.push_back(*id);
  }
  for (; (*scheduler)->has_work() && r.steps < 100000; ++r.steps) {
    auto st = (*scheduler)->step();
    EXPECT_TRUE(st.has_value()) << (st ? "" : st.error().message);
  }
  for (uint64_t id : ids) {
    EXPECT_EQ(done[id].stop_reason, StopReason::kMaxTokens);
    r.tokens.push_back(done[id].tokens);
  }
  EXPECT_EQ((*scheduler)->kv_pool().pages_in_use(), 0);
  return r;
}

TEST(NgramSpeculation, GreedyOutputEqualsPlainGreedyInFewerSteps) {
  // Every KV storage type: stories260K (head size 8) for f32/f16, pycode1m for q8_0/q4_0.
  const std::pair<const char*, std::vector<kv::KvType>> cases[] = {
      {"models/stories260K/stories260K.gguf", {kv::KvType::kF32, kv::KvType::kF16}},
      {"models/pycode/pycode1m.gguf", {kv::KvType::kQ8_0, kv::KvType::kQ4_0}}};
  for (const auto& [model, types] : cases) {
    SessionOptions so;
    so.n_threads = 2;
    auto session = Session::open(test::shared_path(model), so);
    ASSERT_TRUE(session.has_value()) << session.error().message;
    for (const kv::KvType type : types) {
      SCOPED_TRACE(std::string(model) + " " + std::string(kv::kv_type_name(type)));
      const Outcome plain = run(**session, "autoregressive", type, 1);
      const Outcome spec = run(**session, "ngram", type, 1);
      const Outcome spec_together = run(**session, "ngram", type, 4);
      ASSERT_EQ(plain.tokens.size(), kPrompts.size());
      ASSERT_EQ(spec.tokens.size(), kPrompts.size());
      ASSERT_EQ(spec_together.tokens.size(), kPrompts.size());
      for (size_t i = 0; i < kPrompts.size(); ++i) {
        EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << kPrompts[i];
        EXPECT_EQ(spec_together.tokens[i], plain.tokens[i]) << kPrompts[i];
        EXPECT_EQ(plain.tokens[i].size(), 64u);
      }
      // Plain decoding takes one step per token after each prompt; accepted drafts save steps.
      EXPECT_LT(spec.steps, plain.steps) << "the n-gram drafter never had a draft accepted";
    }
  }
}

}  // namespace
}  // namespace pareto::engine
