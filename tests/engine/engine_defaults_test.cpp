// The public GenerateParams defaults mirror the sampler's (they were static_asserts until the
// struct gained a string member, which not every compiler constant-evaluates).
#include <gtest/gtest.h>

#include "pareto/pareto.h"
#include "sampling/sampler.h"

namespace pareto {
namespace {

TEST(EngineDefaults, GenerateParamsMirrorTheSamplersDefaults) {
  const GenerateParams g;
  const sampling::SamplingParams s;
  EXPECT_EQ(g.temperature, s.temperature);
  EXPECT_EQ(g.top_k, s.top_k);
  EXPECT_EQ(g.top_p, s.top_p);
  EXPECT_EQ(g.min_p, s.min_p);
  EXPECT_EQ(g.repeat_penalty, s.repeat_penalty);
  EXPECT_EQ(g.repeat_last_n, s.repeat_last_n);
  EXPECT_EQ(g.seed, sampling::kDefaultSeed);
  EXPECT_TRUE(g.strategy.empty());  // autoregressive
}

}  // namespace
}  // namespace pareto
