// KV budgets in the step loop (engine/scheduler.h, engine/step_attention.h) on stories260K: a
// request's budget gives the tokens of the same policy applied by hand after every forward; a
// speculative request's rejected drafts never reach its policy; bad policies, budgets and prompts
// are errors of the request alone; evictions are counted.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "engine/scheduler.h"
#include "engine/session.h"
#include "engine/step_attention.h"
#include "kv/kv_policy.h"
#include "test_util.h"

namespace pareto::engine {
namespace {

std::unique_ptr<Session> open_stories() {
  SessionOptions so;
  so.n_threads = 2;
  auto s = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

RequestResult run_one(Session& session, const SchedulerOptions& o, const std::string& prompt,
                      const RequestParams& p) {
  auto sched = Scheduler::create(session.model(), session.tokenizer(), session.pool(), o);
  EXPECT_TRUE(sched.has_value());
  RequestResult out;
  RequestCallbacks cb;
  cb.on_done = [&out](const RequestResult& r) { out = r; };
  auto id = (*sched)->submit(session.tokenizer().encode(prompt, true), p, std::move(cb));
  EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
  for (int guard = 0; (*sched)->has_work() && guard < 10000; ++guard) {
    EXPECT_TRUE((*sched)->step().has_value());
  }
  EXPECT_EQ((*sched)->kv_pool().pages_in_use(), 0);
  EXPECT_EQ((*sched)->counters().kv_evicted_entries, out.kv_evicted);
  return out;
}

// Greedy decoding by hand: the whole prompt in one forward, the budget enforced after every
// forward, as the scheduler does for a prompt that fits one step.
std::vector<int32_t> by_hand(Session& session, const std::string& prompt, int n,
                             const std::string& policy_name, const std::string& budget,
                             int64_t* evicted = nullptr) {
  const model::Model& m = session.model();
  kv::KvCache cache = m.make_cache(256, kv::KvType::kF16, kv::KvType::kF16);
  auto policy = kv::make_kv_policy(policy_name, cache.shape());
  EXPECT_TRUE(policy.has_value());
  model::KvPolicyObserver obs;
  obs.set(0, policy->get());
  model::ForwardOptions fo;
  fo.batch_invariant = true;
  fo.attention_observer = &obs;
  std::vector<int32_t> in = session.tokenizer().encode(prompt, true);
  std::vector<int32_t> out;
  std::vector<float> logits;
  kv::KvCache parked = cache.empty_like();
  for (int i = 0; i < n; ++i) {
    kv::before_kv_forward(cache, **policy, parked, i == 0);
    EXPECT_TRUE(m.forward(in, cache, logits, session.pool(), fo).has_value());
    const int64_t e = kv::enforce_kv_budget(cache, **policy, *kv::parse_kv_budget(budget), &parked);
    if (evicted != nullptr) *evicted += e;
    const auto best =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(best);
    in = {best};
  }
  return out;
}

TEST(KvBudgetEngine, ARequestsBudgetGivesThePolicyAppliedAfterEveryForward) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.max_sequences = 1;
  o.context_length = 256;
  o.forward.batch_invariant = true;
  const std::string prompt = "Once upon a time, there was a little girl named Lily who loved";
  for (const std::string& name : kv::kv_policy_names()) {
    if (name == "full") continue;
    RequestParams p;
    p.sampling.temperature = 0;
    p.max_tokens = 64;
    p.ignore_eos = true;
    p.kv_policy = name;
    p.kv_budget = *kv::parse_kv_budget("25%");
    const RequestResult r = run_one(*session, o, prompt, p);
    int64_t moved = 0;
    std::vector<int32_t> want = by_hand(*session, prompt, 64, name, "25%", &moved);
    EXPECT_EQ(r.tokens, want) << name;
    EXPECT_GT(moved, 0) << name;
    // `refresh` parks what it leaves out (nothing freed, nothing counted as evicted).
    if (name == "refresh") {
      EXPECT_EQ(r.kv_evicted, 0);
    } else {
      EXPECT_EQ(r.kv_evicted, moved) << name;
    }
  }
  // And the budget matters: the full cache decodes differently at 25% for this prompt.
  RequestParams plain;
  plain.sampling.temperature = 0;
  plain.max_tokens = 64;
  plain.ignore_eos = true;
  EXPECT_NE(run_one(*session, o, prompt, plain).tokens,
            by_hand(*session, prompt, 64, "window", "25%"));
}

// A policy that records what it is fed.
class Recording final : public kv::KvPolicy {
 public:
  std::string_view name() const override { return "recording"; }
  bool needs_attention() const override { return true; }
  void observe(int layer, int head, std::span<const float> weights, int n_queries, int group,
               int length) override {
    EXPECT_EQ(group, 1);
    fed.push_back({layer, head, n_queries, length, {weights.begin(), weights.end()}});
  }
  std::vector<int> select(const kv::KvCache&, int, int, int) override { return {}; }
  struct Fed {
    int layer, head, n_queries, length;
    std::vector<float> weights;
  };
  std::vector<Fed> fed;
};

TEST(KvBudgetEngine, RejectedDraftsNeverReachThePolicy) {
  // A step verified 4 entries (positions 10..13) of a cache that held 10; 2 were accepted and the
  // cache rolled back to 12 entries: the policy gets the first 2 query rows, 12 entries wide.
  const kv::KvShape shape{1, 1, 4, 64};
  kv::KvCache cache(shape);
  ASSERT_TRUE(cache.reserve(14).has_value());
  std::vector<float> kv(4, 1.0f);
  for (int t = 0; t < 14; ++t) cache.append(0, 0, t, kv.data(), kv.data());
  cache.set_n_tokens(14);
  StepAttention step;
  step.begin_step(1);
  Recording policy;
  step.set(0, &policy);
  ASSERT_TRUE(step.wants(0));
  std::vector<float> w(4 * 14);
  for (int q = 0; q < 4; ++q) {
    for (int e = 0; e <= 10 + q; ++e) w[static_cast<size_t>(q * 14 + e)] = 1.0f + q;
  }
  step.observe(0, 0, 0, w, 4, 1, 14);
  cache.truncate(12);
  step.commit(0, 10, cache);
  ASSERT_EQ(policy.fed.size(), 1u);
  EXPECT_EQ(policy.fed[0].n_queries, 2);
  EXPECT_EQ(policy.fed[0].length, 12);
  for (int q = 0; q < 2; ++q) {
    for (int e = 0; e < 12; ++e) {
      EXPECT_EQ(policy.fed[0].weights[static_cast<size_t>(q * 12 + e)], e <= 10 + q ? 1.0f + q : 0)
          << q << " " << e;
    }
  }
  // The next step starts clean.
  step.begin_step(1);
  step.set(0, &policy);
  step.commit(0, 12, cache);
  EXPECT_EQ(policy.fed.size(), 1u);
}

TEST(KvBudgetEngine, SpeculativeRequestsWithABudgetRunAndReturnEveryPage) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.context_length = 256;
  o.forward.batch_invariant = true;
  // refresh: drafts roll back in the small cache or, on a full-attention step, in the whole one;
  // its parked cache returns its pages too (run_one checks the pool is empty after).
  for (const std::string policy : {"h2o", "refresh"}) {
    for (const std::string strategy : {"ngram", "sam"}) {
      RequestParams p;
      p.sampling.temperature = 0;
      p.max_tokens = 80;
      p.ignore_eos = true;
      p.strategy = strategy;
      p.kv_policy = policy;
      p.kv_budget = *kv::parse_kv_budget("30%");
      const RequestResult r =
          run_one(*session, o, "Once upon a time, there was a dog. The dog was happy. The dog", p);
      EXPECT_EQ(r.tokens.size(), 80u) << strategy << " " << policy;
      if (policy == "h2o") {
        EXPECT_GT(r.kv_evicted, 0) << strategy;
      }
      EXPECT_GT(r.speculation.drafted, 0) << strategy << " " << policy;
    }
  }
}

TEST(KvBudgetEngine, BadPoliciesAndPromptsFailTheRequest) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  auto sched = Scheduler::create(session->model(), session->tokenizer(), session->pool(), {});
  ASSERT_TRUE(sched.has_value());
  RequestParams p;
  p.kv_policy = "lru";
  p.kv_budget = *kv::parse_kv_budget("20%");
  auto bad = (*sched)->submit({1, 2, 3}, p, {});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("unknown policy 'lru'"), std::string::npos);
  p.kv_policy = "snapkv";
  auto one = (*sched)->submit({1}, p, {});
  ASSERT_FALSE(one.has_value());
  EXPECT_NE(one.error().message.find("at least 2 tokens"), std::string::npos)
      << one.error().message;
  // Per-layer budgets must number the model's layers (stories260K has 5).
  p.kv_policy = "window";
  p.kv_budget = *kv::parse_kv_budget("40%,30%,20%");
  auto layers = (*sched)->submit({1, 2, 3}, p, {});
  ASSERT_FALSE(layers.has_value());
  EXPECT_NE(layers.error().message.find("3 per-layer budgets, the model has 5 layers"),
            std::string::npos)
      << layers.error().message;
  EXPECT_FALSE((*sched)->has_work());
}

}  // namespace
}  // namespace pareto::engine
