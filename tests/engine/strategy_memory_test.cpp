// What the scheduler gives drafters: cross-request memories per strategy name (a strategy
// learns only from its own requests; bounded sets) and drafts' caches in F16 under a KIVI target.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/scheduler.h"
#include "engine/session.h"
#include "pareto/pareto.h"
#include "test_util.h"

namespace pareto::engine {
namespace strategy_memory_test {
namespace {

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog ran to the park and",
                                           "Lily", "One day, a big red ball"};

// Steps the scheduler takes to finish `strategy`'s greedy requests for kPrompts, one at a time.
int steps_of(Scheduler& scheduler, const Session& session, const std::string& strategy) {
  RequestParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  p.strategy = strategy;
  int steps = 0;
  for (const std::string& prompt : kPrompts) {
    EXPECT_TRUE(scheduler.submit(session.tokenizer().encode(prompt, true), p, {}).has_value());
    for (; scheduler.has_work() && steps < 100000; ++steps) EXPECT_TRUE(scheduler.step());
  }
  return steps;
}

// What a strategy learns across requests (here the n-gram cache) is its own: a strategy that ran
// the same prompts before leaves nothing for another. Without that, `pareto bench spec`, which
// runs every strategy on each prompt, let later strategies find the answer in the cache.
TEST(Speculation, StrategiesLearnAcrossRequestsOnlyFromTheirOwn) {
  SessionOptions so;
  so.n_threads = 1;
  auto session = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(session.has_value()) << session.error().message;
  SchedulerOptions o;
  o.forward.batch_invariant = true;
  o.fixed_draft_length = true;  // step counts independent of timing
  const auto make = [&] {
    auto s = Scheduler::create((*session)->model(), (*session)->tokenizer(), (*session)->pool(), o);
    EXPECT_TRUE(s.has_value());
    return std::move(*s);
  };
  const int fresh = steps_of(*make(), **session, "ngram");
  // The same strategy again: its cache holds every answer, so it needs fewer steps.
  auto again = make();
  steps_of(*again, **session, "ngram");
  EXPECT_LT(steps_of(*again, **session, "ngram"), fresh);
  // Another strategy's runs of the same prompts (a bandit over the n-gram drafter, with a cache
  // of its own): the n-gram strategy starts afresh.
  auto after_other = make();
  steps_of(*after_other, **session, "ngram,sam");
  EXPECT_EQ(steps_of(*after_other, **session, "ngram"), fresh);
  // Memories are kept for strategies that were made; every comma list (a custom bandit) shares
  // one set, so however many names clients send, the sets stay bounded by the registry.
  EXPECT_EQ(after_other->strategy_memories(), 2u);
  RequestParams p;
  p.max_tokens = 1;
  p.strategy = "medusa";
  EXPECT_FALSE(after_other->submit({1, 2}, p, {}).has_value());
  EXPECT_EQ(after_other->strategy_memories(), 2u);
  for (const char* list :
       {"sam,ngram", "ngram,layerskip", "layerskip,sam,ngram", "sam,layerskip"}) {
    p.strategy = list;  // custom bandits: one shared set
    ASSERT_TRUE(after_other->submit({1, 2}, p, {}).has_value()) << p.strategy;
    while (after_other->has_work()) ASSERT_TRUE(after_other->step());
  }
  EXPECT_EQ(after_other->strategy_memories(), 2u);
  // A drafter listed twice is refused (distinct arm lists, hence the bandit's states, stay
  // bounded by the registry's drafters).
  p.strategy = "ngram,sam,ngram";
  const auto twice = after_other->submit({1, 2}, p, {});
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().message.find("'ngram' is listed twice"), std::string::npos);
  p.strategy = "sam";
  ASSERT_TRUE(after_other->submit({1, 2}, p, {}).has_value());
  EXPECT_EQ(after_other->strategy_memories(), 3u);
}

// A KIVI cache quantizes groups as they age, so a rolled-back draft could leave its own cache
// unlike a never-drafted one; drafts' caches therefore take F16 for KIVI types (other types, whose
// entries are stored one by one, stay as asked).
TEST(Speculation, DraftCachesOfAKiviTargetAreF16) {
  SessionOptions so;
  so.n_threads = 1;
  auto target = Session::open(test::shared_path("models/pycode/pycode7m.gguf"), so);
  ASSERT_TRUE(target.has_value()) << target.error().message;
  auto draft = Session::open(test::shared_path("models/pycode/pycode1m.gguf"), so);
  ASSERT_TRUE(draft.has_value()) << draft.error().message;
  const std::pair<kv::KvType, kv::KvType> cases[] = {{kv::KvType::kKivi4, kv::KvType::kF16},
                                                     {kv::KvType::kKivi2, kv::KvType::kF16},
                                                     {kv::KvType::kF32, kv::KvType::kF32}};
  for (const auto& [asked, drafts] : cases) {
    SCOPED_TRACE(std::string(kv::kv_type_name(asked)));
    SchedulerOptions o;
    o.key_type = o.value_type = asked;
    o.draft_model = &(*draft)->model();
    auto s = Scheduler::create((*target)->model(), (*target)->tokenizer(), (*target)->pool(), o);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ((*s)->kv_pool().options().key_type, asked);
    EXPECT_EQ((*s)->kv_pool().options().value_type, asked);
    ASSERT_NE((*s)->draft_kv_pool(), nullptr);
    EXPECT_EQ((*s)->draft_kv_pool()->options().key_type, drafts);
    EXPECT_EQ((*s)->draft_kv_pool()->options().value_type, drafts);
  }
}

}  // namespace
}  // namespace strategy_memory_test
}  // namespace pareto::engine
