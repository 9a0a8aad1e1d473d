// CostAwareLength: model-free drafts cut to the length that measured acceptance and verification
// cost pay for.
#include "decoding/draft_length.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace pareto::decoding {
namespace draft_length_test {

// Always finds the same eight-token continuation.
class EightTokens final : public Drafter {
 public:
  std::string_view name() const override { return "eight"; }
  void draft(const SequenceState&, int max_tokens, Draft& out) override {
    for (int i = 0; i < std::min(max_tokens, 8); ++i) out.tokens.push_back(100 + i);
  }
};

// A verification of `drafted` tokens of which `accepted` passed, on a model where a step costs
// 1 s plus 0.1 s per verified entry.
Verification verification(int drafted, int accepted) {
  return {drafted, accepted, 1.0 + 0.1 * (drafted + 1)};
}

std::vector<int32_t> draft_of(CostAwareLength& d) {
  SequenceState seq;
  seq.tokens = {1, 2, 3};
  Draft out;
  d.draft(seq, 8, out);
  return out.tokens;
}

TEST(CostAwareLength, ProposesWhatTheDrafterFoundUntilTheCostIsMeasured) {
  CostAwareLength d(std::make_unique<EightTokens>());
  EXPECT_EQ(d.name(), "eight");
  EXPECT_EQ(draft_of(d).size(), 8u);
  d.verified(SequenceState{}, verification(8, 3));
  EXPECT_EQ(draft_of(d).size(), 8u);  // one verification: no slope yet
}

// Positions 0 and 1 always pass, position 2 never does. With a step of 1.1 s and 0.1 s per
// entry: 0 tokens drafted give 1 / 1.1 = 0.91 tokens/s, 1: ~2 / 1.2 = 1.67, 2: ~3 / 1.3 = 2.3,
// 3: ~3 / 1.4 = 2.1; so two.
TEST(CostAwareLength, CutsDraftsWherePassingStops) {
  CostAwareLength d(std::make_unique<EightTokens>());
  for (int i = 0; i < 40; ++i) {
    SequenceState seq;
    d.verified(seq, verification(i % 2 == 0 ? 8 : 3, 2));
  }
  EXPECT_GT(d.pass_rate(0), 0.95);
  EXPECT_GT(d.pass_rate(1), 0.95);
  EXPECT_LT(d.pass_rate(2), 0.05);
  EXPECT_EQ(d.choose(8), 2);
  EXPECT_EQ(d.choose(1), 1);
  EXPECT_EQ(draft_of(d), (std::vector<int32_t>{100, 101}));
}

// When every position passes, drafting all of it pays.
TEST(CostAwareLength, DraftsEverythingWhenEverythingPasses) {
  CostAwareLength d(std::make_unique<EightTokens>());
  for (int i = 0; i < 40; ++i)
    d.verified(SequenceState{}, verification(i % 2 == 0 ? 8 : 4, i % 2 == 0 ? 8 : 4));
  EXPECT_EQ(d.choose(8), 8);
  EXPECT_EQ(draft_of(d).size(), 8u);
}

// Nothing passes: plain steps; their verifications decay the counts back towards the prior, and
// drafting resumes.
TEST(CostAwareLength, StopsDraftingWhenNothingPassesAndTriesAgainLater) {
  CostAwareLength d(std::make_unique<EightTokens>());
  for (int i = 0; i < 40; ++i) d.verified(SequenceState{}, verification(i % 2 == 0 ? 8 : 3, 0));
  EXPECT_EQ(d.choose(8), 0);
  EXPECT_TRUE(draft_of(d).empty());
  int plain_steps = 0;
  while (d.choose(8) == 0 && plain_steps < 1000) {
    d.verified(SequenceState{}, verification(0, 0));
    ++plain_steps;
  }
  EXPECT_GT(plain_steps, 10);
  EXPECT_LT(plain_steps, 200);
}

// When one more entry costs as much as a whole step, no draft at an even chance pays: the counts
// alone would keep drafting off; a one-token probe every kProbeAfter withheld drafts measures
// again.
TEST(CostAwareLength, ProbesWithOneTokenWhenDraftsStayWithheld) {
  CostAwareLength d(std::make_unique<EightTokens>());
  for (int i = 0; i < 40; ++i) {
    const int drafted = i % 2 == 0 ? 8 : 3;
    d.verified(SequenceState{}, {drafted, 0, 1.0 + 1.0 * (drafted + 1)});
  }
  ASSERT_EQ(d.choose(8), 0);
  for (int i = 1; i < CostAwareLength::kProbeAfter; ++i) {
    ASSERT_TRUE(draft_of(d).empty()) << i;
    d.verified(SequenceState{}, {0, 0, 2.0});
  }
  EXPECT_EQ(draft_of(d), (std::vector<int32_t>{100}));
  d.verified(SequenceState{}, {1, 0, 3.0});
  EXPECT_TRUE(draft_of(d).empty());  // withheld again, counting afresh
}

// Times of zero (a clock that did not move) give no cost to weigh: everything found is proposed,
// and nothing divides by zero.
TEST(CostAwareLength, ZeroTimesProposeEverything) {
  CostAwareLength d(std::make_unique<EightTokens>());
  for (int i = 0; i < 10; ++i) d.verified(SequenceState{}, {i % 2 == 0 ? 8 : 3, 0, 0.0});
  EXPECT_EQ(d.choose(8), 8);
  EXPECT_EQ(draft_of(d).size(), 8u);
}

// A new request's drafter starts from what earlier requests of the engine measured.
TEST(CostAwareLength, NewSequencesStartFromTheSharedMemory) {
  DraftLengthMemory memory;
  {
    CostAwareLength first(std::make_unique<EightTokens>(), &memory);
    for (int i = 0; i < 40; ++i) {
      first.verified(SequenceState{}, verification(i % 2 == 0 ? 8 : 3, 0));
    }
  }
  CostAwareLength second(std::make_unique<EightTokens>(), &memory);
  EXPECT_EQ(second.choose(8), 0);
  CostAwareLength alone(std::make_unique<EightTokens>());
  EXPECT_EQ(alone.choose(8), 8);
  // The memory is per drafter name: another drafter's is fresh.
  EXPECT_FALSE(memory.stats_for("other").cost.ready());
  EXPECT_TRUE(memory.stats_for("eight").cost.ready());
}

}  // namespace draft_length_test
}  // namespace pareto::decoding
