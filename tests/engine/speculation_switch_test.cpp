// The automatic speculation switch: the forward-time line it fits, its prediction of both arms'
// throughput, drafting first until measured, exploration at a bounded rate while drafting loses,
// and a change in the traffic turning the decision around.
#include "engine/speculation_switch.h"

#include <vector>

#include <gtest/gtest.h>

namespace pareto::engine {
namespace {

using Drafts = SpeculationSwitch::Drafts;

bool allow(SpeculationSwitch& sw, int m) {
  return sw.decide(m) != Drafts::kNone;
}

// Forwards that take a + b n seconds for n entries, n = 1..256.
void fit(SpeculationSwitch& sw, double a, double b) {
  for (int round = 0; round < 20; ++round) {
    for (int n = 1; n <= 256; ++n) sw.record_forward(n, a + b * n);
  }
}

// Drafting steps of m sequences, each drafting k tokens with `accepted` kept, d seconds each.
void drafts(SpeculationSwitch& sw, int steps, int m, int k, double accepted, double d) {
  for (int i = 0; i < steps; ++i) {
    sw.record_drafts(m, int64_t{m} * k, static_cast<int64_t>(m * accepted));
    sw.record_draft_time(m, m * d);
  }
}

TEST(SpeculationSwitch, InterpolatesForwardTimesBetweenBatchSizes) {
  SpeculationSwitch sw;
  EXPECT_EQ(sw.forward_seconds(4), 0);
  sw.record_forward(1, 0.001);
  sw.record_forward(8, 0.002);
  sw.record_forward(64, 0.010);
  EXPECT_NEAR(sw.forward_seconds(1), 0.001, 1e-12);
  EXPECT_NEAR(sw.forward_seconds(4.5), 0.0015, 1e-12);
  EXPECT_NEAR(sw.forward_seconds(36), 0.006, 1e-12);
  EXPECT_NEAR(sw.forward_seconds(0.5), 0.001, 1e-12);  // flat below the smallest batch seen
  EXPECT_NEAR(sw.forward_seconds(128), 0.020, 1e-12);  // in proportion beyond the largest
  SpeculationSwitch line;
  fit(line, 0.002, 0.0001);  // a line is reproduced between the buckets' means
  EXPECT_NEAR(line.forward_seconds(1), 0.0021, 1e-9);
  EXPECT_NEAR(line.forward_seconds(40), 0.006, 1e-9);
}

TEST(SpeculationSwitch, DraftsUntilItHasMeasuredDrafting) {
  SpeculationSwitch sw;
  fit(sw, 0.0, 0.001);  // compute-bound: drafting would not pay
  for (int i = 0; i < SpeculationSwitch::kWarmSteps; ++i) {
    EXPECT_TRUE(allow(sw, 16));
    drafts(sw, 1, 16, 4, 0.5, 0.0002);
  }
  EXPECT_FALSE(allow(sw, 16));
}

TEST(SpeculationSwitch, PredictsBothArms) {
  SpeculationSwitch sw;
  fit(sw, 0.002, 0.0001);
  drafts(sw, 10, 4, 4, 2.0, 0.0001);  // 4 drafted, 2 accepted, 0.1 ms each per sequence
  const SpeculationSwitch::Estimate e = sw.estimate(4);
  EXPECT_NEAR(e.plain_tokens_per_second, 4 / 0.0024, 1e-6);
  EXPECT_NEAR(e.draft_tokens_per_second, 4 * 3 / (0.002 + 0.0001 * 20 + 4 * 0.0001), 1e-6);
}

TEST(SpeculationSwitch, DraftsWhereVerifyingIsCheapAndNotWhereItIsNot) {
  SpeculationSwitch sw;
  // Weights dominate a small batch (2 ms), each entry adds 0.05 ms: 5 drafts cost little at
  // m = 1 and a lot at m = 64.
  fit(sw, 0.002, 0.00005);
  drafts(sw, 20, 4, 5, 2.0, 0.0001);
  EXPECT_TRUE(allow(sw, 2));
  EXPECT_GT(sw.estimate(2).draft_tokens_per_second, sw.estimate(2).plain_tokens_per_second);
  EXPECT_LT(sw.estimate(64).draft_tokens_per_second, sw.estimate(64).plain_tokens_per_second);
  // Explorations only, each wait twice the last up to 64 steps: after 16, 32, 64, 64 plain ones.
  std::vector<int> explored;
  const int n = 16 + 32 + 64 + 64 + 50;
  for (int i = 1; i <= n; ++i) {
    const Drafts d = sw.decide(64);
    EXPECT_NE(d, Drafts::kAll);  // an exploration lets one sequence draft, not all
    if (d == Drafts::kOne) explored.push_back(i);
  }
  EXPECT_EQ(explored, (std::vector<int>{16, 48, 112, 176}));
}

TEST(SpeculationSwitch, FollowsAChangeInTheTraffic) {
  SpeculationSwitch sw;
  fit(sw, 0.002, 0.00005);
  drafts(sw, 50, 2, 5, 3.0, 0.0001);
  EXPECT_TRUE(allow(sw, 2));
  // The text stops being predictable: drafts are rejected. The measurements of the drafting
  // steps (explorations included) move the estimate, and drafting stops.
  drafts(sw, 100, 2, 5, 0.0, 0.0001);
  EXPECT_FALSE(allow(sw, 2) && allow(sw, 2));
}

TEST(SpeculationSwitch, ASequenceAloneAlwaysMayDraft) {
  SpeculationSwitch sw;
  fit(sw, 0.0, 0.001);                    // compute-bound
  drafts(sw, 20, 1, 8, 0.0, 0.001);       // and every draft rejected
  EXPECT_FALSE(allow(sw, 2));             // in a batch: plain
  EXPECT_EQ(sw.decide(1), Drafts::kAll);  // alone: the strategy's own call
}

TEST(SpeculationSwitch, IgnoresEmptyMeasurements) {
  SpeculationSwitch sw;
  sw.record_forward(0, 0.01);
  sw.record_forward(4, 0);
  sw.record_drafts(0, 3, 1);
  sw.record_drafts(4, 0, 0);  // nothing drafted: no measurement of drafting
  sw.record_draft_time(0, 0.01);
  EXPECT_EQ(sw.forward_seconds(4), 0);
  EXPECT_EQ(sw.drafting_steps(), 0);
  EXPECT_TRUE(allow(sw, 4));
}

}  // namespace
}  // namespace pareto::engine
