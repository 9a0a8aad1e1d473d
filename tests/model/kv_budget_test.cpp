// KV budgets through the forward pass (kv/kv_policy.h, model::AttentionObserver) on stories260K:
// the attention weights handed to policies are softmax rows; a budget of everything reproduces
// the full cache token for token and bit for bit for every policy; after evictions the kept
// entries are the keys computed at their original positions (RoPE applied there, never again),
// and the model goes on attending to them.
#include <gtest/gtest.h>

#include <tuple>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_file.h"
#include "kv/kv_policy.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::model {
namespace kv_budget_test {
namespace {

std::unique_ptr<Model> load_stories() {
  auto file = formats::open_model_file(test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(file.has_value()) << (file ? "" : file.error().message);
  if (!file) return nullptr;
  auto m = Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().message);
  return m ? std::move(*m) : nullptr;
}

std::vector<int32_t> prompt_tokens(int n, int n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 1 + (i * 37 + i / 5) % (n_vocab - 1);
  return t;
}

class Recorder final : public AttentionObserver {
 public:
  bool wants(int seq) const override { return seq == 0; }
  void observe(int seq, int layer, int head, std::span<const float> weights, int n_queries,
               int group, int length) override {
    (void)seq;
    calls.push_back({layer, head, n_queries, group, length, {weights.begin(), weights.end()}});
  }
  struct Call {
    int layer, head, n_queries, group, length;
    std::vector<float> weights;
  };
  std::vector<Call> calls;
};

// `prompt` in one forward, then one more token (5), into a fresh cache: a prefill run and a decode
// step for an observer to record.
bool prompt_then_one(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt,
                     const ForwardOptions& fo) {
  kv::KvCache cache = m.make_cache(64);
  std::vector<float> logits;
  const int32_t next = 5;
  return m.forward(prompt, cache, logits, pool, fo).has_value() &&
         m.forward(std::span<const int32_t>(&next, 1), cache, logits, pool, fo).has_value();
}

TEST(KvBudgetForward, ObservedWeightsAreCausalSoftmaxRowsPerQueryHeadGroup) {
  auto m = load_stories();
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config();
  ThreadPool pool(2);
  Recorder rec;
  ForwardOptions fo;
  fo.attention_observer = &rec;
  ASSERT_TRUE(prompt_then_one(*m, pool, prompt_tokens(20, c.n_vocab), fo));
  ASSERT_EQ(rec.calls.size(), static_cast<size_t>(2 * c.n_layers * c.n_kv_heads));
  const int group = c.n_heads / c.n_kv_heads;
  for (size_t i = 0; i < rec.calls.size(); ++i) {
    const Recorder::Call& call = rec.calls[i];
    const bool prefill = i < rec.calls.size() / 2;
    EXPECT_EQ(call.n_queries, prefill ? 20 : 1);
    EXPECT_EQ(call.length, prefill ? 20 : 21);
    EXPECT_EQ(call.group, group);
    ASSERT_EQ(call.weights.size(), static_cast<size_t>(call.n_queries * group * call.length));
    for (int r = 0; r < call.n_queries * group; ++r) {
      const int pos = prefill ? r / group : 20;
      double sum = 0;
      for (int e = 0; e < call.length; ++e) {
        const float w = call.weights[static_cast<size_t>(r * call.length + e)];
        if (e > pos) {
          EXPECT_EQ(w, 0.0f) << "a query saw a later entry";
        } else {
          EXPECT_GE(w, 0.0f);  // a very small weight may underflow to 0 in float
        }
        sum += w;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << "layer " << call.layer << " head " << call.head;
    }
  }
}

TEST(KvBudgetForward, KernelWeightsEqualTheSeparatePassWeights) {
  // The softmax-rows kernels write the weights as they attend; the online form keeps no row, so a
  // separate pass computes them. A prompt of 20 (one long run) and a decode step (a short run),
  // in both numeric modes: same layout, same values (layer 0 up to rounding: its queries are the
  // same; later layers see the two algorithms' slightly different outputs).
  auto m = load_stories();
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config();
  ThreadPool pool(2);
  const auto prompt = prompt_tokens(20, c.n_vocab);
  for (bool invariant : {false, true}) {
    Recorder by_kernel, by_pass;
    for (auto* rec : {&by_kernel, &by_pass}) {
      ForwardOptions fo;
      fo.batch_invariant = invariant;
      fo.attention_observer = rec;
      fo.attention = rec == &by_kernel ? kernels::AttentionAlgorithm::kSoftmaxRows
                                       : kernels::AttentionAlgorithm::kOnlineSoftmax;
      ASSERT_TRUE(prompt_then_one(*m, pool, prompt, fo));
    }
    ASSERT_EQ(by_kernel.calls.size(), by_pass.calls.size());
    for (size_t i = 0; i < by_kernel.calls.size(); ++i) {
      const Recorder::Call& a = by_kernel.calls[i];
      const Recorder::Call& b = by_pass.calls[i];
      ASSERT_EQ(std::tie(a.layer, a.head, a.n_queries, a.group, a.length),
                std::tie(b.layer, b.head, b.n_queries, b.group, b.length));
      ASSERT_EQ(a.weights.size(), b.weights.size());
      // Layer 0: the same queries; the kernels' vector exp and summation order against the pass's
      // libm exp and plain sums differ by a few units in the last place (up to 1.1e-6 measured on
      // NEON). A row or head out of place differs by far more (the control: offsets dropped).
      const float tolerance = a.layer == 0 ? 2e-5f : 1e-3f;
      for (size_t e = 0; e < a.weights.size(); ++e) {
        ASSERT_NEAR(a.weights[e], b.weights[e], tolerance)
            << "layer " << a.layer << " head " << a.head << " at " << e << " invariant "
            << invariant;
      }
    }
  }
}

// Greedy decoding of `steps` tokens after `prompt`, the budget enforced after every forward.
struct Trace {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // every step's row
};
Trace greedy(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt, int steps,
             const std::string& policy_name, const kv::KvBudget& budget, bool observe,
             kv::KvCache* out_cache = nullptr) {
  kv::KvCache cache = m.make_cache(static_cast<int>(prompt.size()) + steps + 1);
  auto policy = kv::make_kv_policy(policy_name, cache.shape());
  EXPECT_TRUE(policy.has_value());
  KvPolicyObserver obs;
  obs.set(0, policy->get());
  ForwardOptions fo;
  if (observe) fo.attention_observer = &obs;
  Trace t;
  std::vector<float> logits;
  std::vector<int32_t> in = prompt;
  kv::KvCache parked = cache.empty_like();
  for (int s = 0; s < steps; ++s) {
    kv::before_kv_forward(cache, **policy, parked, s == 0);
    EXPECT_TRUE(m.forward(in, cache, logits, pool, fo).has_value());
    kv::enforce_kv_budget(cache, **policy, budget, &parked);
    t.logits.insert(t.logits.end(), logits.begin(), logits.end());
    const auto best =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t.tokens.push_back(best);
    in = {best};
  }
  if (out_cache != nullptr) *out_cache = std::move(cache);
  return t;
}

TEST(KvBudgetForward, ABudgetOfEverythingReproducesTheFullCacheForEveryPolicy) {
  auto m = load_stories();
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const auto prompt = prompt_tokens(40, m->config().n_vocab);
  const Trace plain = greedy(*m, pool, prompt, 60, "full", kv::KvBudget{}, false);
  for (const std::string& name : kv::kv_policy_names()) {
    const Trace t = greedy(*m, pool, prompt, 60, name, *kv::parse_kv_budget("100%"), true);
    EXPECT_EQ(t.tokens, plain.tokens) << name;
    EXPECT_TRUE(t.logits == plain.logits) << name << ": logits not bit-identical";
  }
  // And a real budget changes what the model computes (the comparison can fail).
  const Trace cut = greedy(*m, pool, prompt, 60, "window", *kv::parse_kv_budget("20%"), true);
  EXPECT_FALSE(cut.logits == plain.logits);
}

TEST(KvBudgetForward, KeptEntriesAreTheKeysComputedAtTheirOriginalPositions) {
  auto m = load_stories();
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config();
  ThreadPool pool(2);
  const auto prompt = prompt_tokens(64, c.n_vocab);
  for (const std::string& name : kv::kv_policy_names()) {
    if (name == "full") continue;
    kv::KvCache full, cut;
    const Trace a = greedy(*m, pool, prompt, 30, "full", kv::KvBudget{}, false, &full);
    const Trace b = greedy(*m, pool, prompt, 30, name, *kv::parse_kv_budget("25%"), true, &cut);
    (void)a, (void)b;
    const int hd = c.head_dim;
    for (int l = 0; l < c.n_layers; ++l) {
      for (int h = 0; h < c.n_kv_heads; ++h) {
        const int nf = full.length(l, h), nc = cut.length(l, h);
        // The length enforcement leaves: the prompt's 64 entries cut once, then one entry per
        // step cut back to the layer's budget at that step (25% of the tokens seen, rounded up;
        // a budget that grew faster than the entries, as the pyramid's lower layers', cuts none).
        const auto policy = *kv::make_kv_policy(name, cut.shape());
        const kv::KvBudget budget = *kv::parse_kv_budget("25%");
        const auto cut_to = [&](int length, int seen) {
          return budget.keep(seen) >= seen
                     ? length
                     : std::min(length,
                                std::max(1, policy->layer_keep(l, budget.keep(seen), seen)));
        };
        int want = cut_to(static_cast<int>(prompt.size()), static_cast<int>(prompt.size()));
        for (int seen = static_cast<int>(prompt.size()) + 1; seen <= cut.n_tokens(); ++seen) {
          // `refresh` cuts only after a full-attention forward (every kRefreshStride-th, all
          // parked entries back first); between them its cache grows.
          const int forward = seen - static_cast<int>(prompt.size());
          if (name == "refresh") {
            want = forward % kv::kRefreshStride == 0 ? cut_to(seen, seen) : want + 1;
          } else {
            want = cut_to(want + 1, seen);
          }
        }
        ASSERT_EQ(nc, want) << name;
        std::vector<float> kf(static_cast<size_t>(nf * hd)), vf(kf.size());
        std::vector<float> kc(static_cast<size_t>(nc * hd)), vc(kc.size());
        std::vector<int32_t> pf(static_cast<size_t>(nf)), pc(static_cast<size_t>(nc));
        full.gather(l, h, kf.data(), vf.data(), pf.data());
        cut.gather(l, h, kc.data(), vc.data(), pc.data());
        EXPECT_TRUE(std::is_sorted(pc.begin(), pc.end()));
        // Until the first evicted position both runs computed the same entries; the kept ones
        // before it must be the full run's keys at those positions, bit for bit.
        int first_gap = 0;
        while (first_gap < nc && pc[static_cast<size_t>(first_gap)] == first_gap) ++first_gap;
        ASSERT_LT(first_gap, nc) << "nothing evicted";
        for (int e = 0; e < first_gap; ++e) {
          ASSERT_TRUE(std::equal(kc.begin() + e * hd, kc.begin() + (e + 1) * hd,
                                 kf.begin() + pc[static_cast<size_t>(e)] * hd))
              << name << " layer " << l << " head " << h << " entry " << e;
        }
        // Every kept entry's key is the full run's key at its position rotated the same way: the
        // layer-0 keys depend only on the token and the position (no attention before them).
        if (l == 0) {
          for (int e = 0; e < nc; ++e) {
            const int32_t pos = pc[static_cast<size_t>(e)];
            const bool same_token =
                pos < static_cast<int32_t>(prompt.size()) ||
                a.tokens[static_cast<size_t>(pos - static_cast<int32_t>(prompt.size()))] ==
                    b.tokens[static_cast<size_t>(pos - static_cast<int32_t>(prompt.size()))];
            if (!same_token) continue;
            EXPECT_TRUE(
                std::equal(kc.begin() + e * hd, kc.begin() + (e + 1) * hd, kf.begin() + pos * hd))
                << name << " head " << h << " position " << pos;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace kv_budget_test
}  // namespace pareto::model
