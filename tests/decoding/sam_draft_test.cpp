// draft-sam (sam_draft.h): which half drafts, what each half is told, and that the draft model
// half catches up on what the automaton's drafts accepted. A real model (stories260K) drafts.
#include "decoding/sam_draft.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "base/thread_pool.h"
#include "decoding/stories_draft_model.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::decoding {
namespace sam_draft_test {
namespace {

using test_models::load_stories;
using test_models::resources_for;

// A greedy request whose text ends in a 7-token repeat of an earlier span: the automaton's match
// is 7 long and continues with 17, 20, 10, ...
SequenceState repeating_request(int n_vocab) {
  return test_models::greedy_request(
      {1, 10, 11, 12, 13, 14, 15, 16, 17, 20, 10, 11, 12, 13, 14, 15, 16}, n_vocab);
}

TEST(SamDraftDrafter, ALongMatchDraftsItsContinuationAShortOneTheModel) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  const DraftModelResources r = resources_for(*m, pool);
  const SequenceState seq = repeating_request(m->config().n_vocab);

  SamDraftDrafter long_enough(r, nullptr, /*fixed_length=*/true, nullptr, /*min_match=*/7);
  Draft d;
  long_enough.draft(seq, 4, d);
  EXPECT_EQ(long_enough.last_source(), SamDraftDrafter::Source::kAutomaton);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{17, 20, 10, 11}));
  EXPECT_TRUE(d.q.empty());
  // The draft model took nothing in: it lags by the whole text.
  EXPECT_EQ(long_enough.lag(seq), static_cast<int>(seq.tokens.size()));

  // A match one token short of the minimum: the draft model's chain, as its own drafter makes it.
  SamDraftDrafter too_short(r, nullptr, true, nullptr, /*min_match=*/8);
  Draft from_model;
  too_short.draft(seq, 4, from_model);
  EXPECT_EQ(too_short.last_source(), SamDraftDrafter::Source::kModel);
  DraftModelDrafter alone(r, false);
  Draft expected;
  alone.draft(seq, 4, expected);
  EXPECT_EQ(from_model.tokens, expected.tokens);
  EXPECT_EQ(from_model.tokens.size(), 4u);  // fixed length
  EXPECT_EQ(too_short.lag(seq), 0);         // the whole text taken in
}

TEST(SamDraftDrafter, EachHalfLearnsFromItsOwnDraftsAndTheModelCatchesUp) {
  const std::unique_ptr<model::Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(1);
  const DraftModelResources r = resources_for(*m, pool);
  SequenceState seq = repeating_request(m->config().n_vocab);
  DraftLengthMemory memory;
  SamDraftDrafter drafter(r, nullptr, /*fixed_length=*/false, &memory, /*min_match=*/7);
  const DraftLengthStats& automaton_stats = memory.stats_for("draft-sam");
  const DraftModelStats& model_stats = memory.model_stats_for("draft-adaptive");

  // An automaton step (no costs measured yet: the cost-aware length keeps the whole match).
  Draft d;
  drafter.draft(seq, 3, d);
  ASSERT_EQ(drafter.last_source(), SamDraftDrafter::Source::kAutomaton);
  ASSERT_EQ(d.tokens, (std::vector<int32_t>{17, 20, 10}));
  seq.tokens.insert(seq.tokens.end(), {17, 20, 99});  // two accepted, the target's own third
  drafter.verified(seq, {3, 2, 0.001});
  EXPECT_GT(automaton_stats.passes.offered[0], 0);
  EXPECT_EQ(model_stats.accepted, 0);
  EXPECT_EQ(model_stats.predicted, 0);

  // Its lag counts the prompt, not the 3 tokens its own automaton step added (its running cost),
  // also after a step with no room to draft (nothing synced).
  EXPECT_EQ(drafter.lag(seq), static_cast<int>(seq.tokens.size()) - 3);
  Draft none;
  drafter.draft(seq, 0, none);
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(drafter.last_source(), SamDraftDrafter::Source::kNone);
  EXPECT_EQ(drafter.lag(seq), static_cast<int>(seq.tokens.size()) - 3);
  // A catch-up takes in all but the pending token.
  EXPECT_GT(drafter.catch_up(seq), 0);
  EXPECT_EQ(drafter.lag(seq), 1);

  // Now no match: the model drafts, after taking in everything it lags by, and drafts what a
  // drafter that followed the sequence from the start drafts.
  Draft from_model;
  drafter.draft(seq, 3, from_model);
  ASSERT_EQ(drafter.last_source(), SamDraftDrafter::Source::kModel);
  EXPECT_EQ(drafter.lag(seq), 0);
  DraftModelDrafter fresh(r, true);
  Draft expected;
  fresh.draft(seq, 3, expected);
  EXPECT_EQ(from_model.tokens, expected.tokens);
  const double offered_before = automaton_stats.passes.offered[0];
  drafter.verified(seq, {3, 1, 0.001});
  EXPECT_GT(model_stats.predicted, 0);
  EXPECT_EQ(automaton_stats.passes.offered[0], offered_before);
}

}  // namespace
}  // namespace sam_draft_test
}  // namespace pareto::decoding
