// Speculative decoding end to end: for every drafter (n-gram, suffix automaton, draft model fixed
// and adaptive) greedy output equals plain greedy output token for token (batch-invariant
// numerics, every KV storage type, each request alone and 4 together), in fewer engine steps
// (the test fails if a drafter never pays); sampled output follows plain sampling's distribution
// (two-sample chi-square, with a control showing the test tells temperatures apart); a draft
// model with another vocabulary is refused at load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <utility>

#include "decoding/drafter.h"
#include "decoding/ngram.h"
#include "decoding/suffix_automaton.h"
#include "engine/scheduler.h"
#include "engine/session.h"
#include "pareto/pareto.h"
#include "test_util.h"

namespace pareto::engine {
namespace speculation_test {
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
  int64_t residual_rows = 0;  // Scheduler::residual_rows_captured
};

// Each prompt alone (or all together), greedy, `max_tokens` tokens, with `strategy`.
Outcome run(Session& session, const std::string& strategy, kv::KvType type, int max_sequences,
            const std::vector<std::string>& prompts = kPrompts, Session* draft = nullptr,
            int speculation_max_batch = 0,
            std::shared_ptr<const decoding::SuffixAutomaton> sam_corpus = nullptr,
            bool fixed_draft_length = true) {
  SchedulerOptions o;
  // Fixed lengths unless asked: step counts then do not depend on measured times.
  o.fixed_draft_length = fixed_draft_length;
  o.sam_corpus = std::move(sam_corpus);
  o.max_sequences = max_sequences;
  o.speculation_max_batch = speculation_max_batch;
  o.forward.batch_invariant = true;
  o.key_type = o.value_type = type;
  // KIVI: small groups and recent window, so that 64 tokens cross many quantization points (a
  // draft must stop at each: kv_cache.h, entries_in_one_view).
  o.kivi_group = 16;
  o.kivi_residual = 8;
  if (draft != nullptr) {
    o.draft_model = &draft->model();
    o.draft_pool = &draft->pool();
  }
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
  for (const std::string& prompt : prompts) {
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
  r.residual_rows = (*scheduler)->residual_rows_captured();
  return r;
}

TEST(Speculation, GreedyOutputEqualsPlainGreedyInFewerSteps) {
  // Every KV storage type: stories260K (head size 8) for f32/f16/kivi2, pycode1m for q8_0/q4_0.
  const std::pair<const char*, std::vector<kv::KvType>> cases[] = {
      {"models/stories260K/stories260K.gguf",
       {kv::KvType::kF32, kv::KvType::kF16, kv::KvType::kKivi2}},
      {"models/pycode/pycode1m.gguf", {kv::KvType::kQ8_0, kv::KvType::kQ4_0}}};
  for (const auto& [model, types] : cases) {
    SessionOptions so;
    so.n_threads = 2;
    auto session = Session::open(test::shared_path(model), so);
    ASSERT_TRUE(session.has_value()) << session.error().message;
    for (const kv::KvType type : types) {
      const Outcome plain = run(**session, "autoregressive", type, 1);
      ASSERT_EQ(plain.tokens.size(), kPrompts.size());
      for (const char* strategy :
           {"ngram", "sam", "layerskip", "bandit", "ngram,sam", "ngram,layerskip"}) {
        // Layer skip as an arm: the first storage type of each model is enough (the arm's
        // plumbing does not depend on it; CI's time does).
        if (std::string_view(strategy) == "ngram,layerskip" && type != types.front()) continue;
        SCOPED_TRACE(std::string(model) + " " + std::string(kv::kv_type_name(type)) + " " +
                     strategy);
        const Outcome spec = run(**session, strategy, type, 1);
        const Outcome spec_together = run(**session, strategy, type, 4);
        ASSERT_EQ(spec.tokens.size(), kPrompts.size());
        ASSERT_EQ(spec_together.tokens.size(), kPrompts.size());
        for (size_t i = 0; i < kPrompts.size(); ++i) {
          EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << kPrompts[i];
          EXPECT_EQ(spec_together.tokens[i], plain.tokens[i]) << kPrompts[i];
          EXPECT_EQ(plain.tokens[i].size(), 64u);
        }
        // Plain decoding takes one step per token after each prompt; accepted drafts save steps.
        // (A bandit may rightly settle on plain decoding, by the speeds it measured.)
        if (std::string_view(strategy).find("bandit") == std::string_view::npos &&
            std::string_view(strategy).find(',') == std::string_view::npos) {
          EXPECT_LT(spec.steps, plain.steps) << "the drafter never had a draft accepted";
        }
        // Layer skip (alone or as an arm) re-chooses its layers from the verifications' residual
        // streams (CLaSp); nothing else asks the forward for them.
        const bool layer_skip = std::string_view(strategy).find("layerskip") != std::string::npos;
        EXPECT_EQ(spec.residual_rows > 0, layer_skip);
        EXPECT_EQ(spec_together.residual_rows > 0, layer_skip);
      }
      // Cost-aware lengths (the default outside these tests; draft_length.h): shorter drafts,
      // chosen by measured times, the same output.
      for (const char* strategy : {"ngram", "sam", "ngram,sam"}) {
        SCOPED_TRACE(std::string(model) + " " + std::string(kv::kv_type_name(type)) + " " +
                     strategy + " (cost-aware length)");
        for (const int together : {1, 4}) {
          const Outcome spec = run(**session, strategy, type, together, kPrompts, nullptr, 0,
                                   nullptr, /*fixed_draft_length=*/false);
          ASSERT_EQ(spec.tokens.size(), kPrompts.size());
          for (size_t i = 0; i < kPrompts.size(); ++i) {
            EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << kPrompts[i];
          }
          // No step count is asked here: how many steps cost-aware drafts save depends on the
          // measured times (a busy machine may cut nearly all). The choice itself is tested with
          // given times in tests/decoding/draft_length_test.cpp.
        }
      }
    }
  }
}

TEST(Speculation, SamWithACorpusGivesPlainGreedyOutputAndDraftsFromIt) {
  SessionOptions so;
  so.n_threads = 2;
  auto session = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(session.has_value()) << session.error().message;
  const auto type = kv::KvType::kF16;
  const Outcome plain = run(**session, "autoregressive", type, 1);
  const Outcome sam = run(**session, "sam", type, 1);
  ASSERT_EQ(plain.tokens.size(), kPrompts.size());
  // A corpus holding the very continuations plain decoding writes: drafts from it are accepted.
  std::vector<std::vector<int32_t>> docs;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    docs.push_back((*session)->tokenizer().encode(kPrompts[i], true));
    docs.back().insert(docs.back().end(), plain.tokens[i].begin(), plain.tokens[i].end());
  }
  const Outcome with_corpus = run(**session, "sam", type, 1, kPrompts, nullptr, 0,
                                  std::make_shared<const decoding::SuffixAutomaton>(
                                      decoding::SuffixAutomaton::of_documents(docs)));
  // A corpus of random tokens: drafts from it are mostly rejected, the output still plain's.
  std::mt19937 rng(7);
  std::vector<std::vector<int32_t>> noise(2, std::vector<int32_t>(3000));
  for (auto& d : noise) {
    for (auto& t : d) t = static_cast<int32_t>(rng() % 512);
  }
  const Outcome with_noise = run(**session, "sam", type, 1, kPrompts, nullptr, 0,
                                 std::make_shared<const decoding::SuffixAutomaton>(
                                     decoding::SuffixAutomaton::of_documents(noise)));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ(with_corpus.tokens[i], plain.tokens[i]) << kPrompts[i];
    EXPECT_EQ(with_noise.tokens[i], plain.tokens[i]) << kPrompts[i];
  }
  // Drafts of up to 8 from a corpus holding the answer need about a ninth of plain's steps, far
  // fewer than the text alone needs.
  EXPECT_LT(with_corpus.steps, sam.steps / 2) << "sam " << sam.steps;
}

TEST(Speculation, BeyondTheBatchLimitSpeculativeRequestsDecodePlainly) {
  SessionOptions so;
  so.n_threads = 2;
  auto session = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(session.has_value()) << session.error().message;
  const Outcome plain = run(**session, "autoregressive", kv::KvType::kF16, 4);
  const Outcome drafting = run(**session, "ngram", kv::KvType::kF16, 4);
  // 4 sequences decode together the whole time (same length, no end of generation): over a
  // limit of 3 no step drafts, so the steps are plain decoding's; under a limit of 4 drafts pay.
  const Outcome limited = run(**session, "ngram", kv::KvType::kF16, 4, kPrompts, nullptr, 3);
  const Outcome allowed = run(**session, "ngram", kv::KvType::kF16, 4, kPrompts, nullptr, 4);
  EXPECT_EQ(limited.steps, plain.steps);
  EXPECT_LT(allowed.steps, plain.steps);
  EXPECT_EQ(allowed.steps, drafting.steps);
  EXPECT_EQ(limited.tokens, plain.tokens);
  EXPECT_EQ(allowed.tokens, plain.tokens);
  // Switched per step by measured throughput (timing: which steps draft differs between runs):
  // whatever it decides, the output is plain's.
  const Outcome automatic =
      run(**session, "ngram", kv::KvType::kF16, 4, kPrompts, nullptr, SchedulerOptions::kAutomatic);
  EXPECT_EQ(automatic.tokens, plain.tokens);
  EXPECT_LE(automatic.steps, plain.steps);
}

const std::vector<std::string> kCodePrompts = {
    "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
    "import os\n\ndef walk(root):\n    for name in os.listdir(root):\n",
    "def fib(n):\n    if n < 2:\n        return n\n"};

TEST(Speculation, DraftModelGreedyOutputEqualsPlainGreedy) {
  // pycode1m drafts for pycode7m (same tokenizer; distilled from it).
  SessionOptions so;
  so.n_threads = 2;
  auto target = Session::open(test::shared_path("models/pycode/pycode7m.gguf"), so);
  ASSERT_TRUE(target.has_value()) << target.error().message;
  so.n_threads = 1;
  auto draft = Session::open(test::shared_path("models/pycode/pycode1m.gguf"), so);
  ASSERT_TRUE(draft.has_value()) << draft.error().message;
  ASSERT_TRUE(check_draft_vocabulary((*target)->tokenizer(), "pycode7m", (*draft)->tokenizer(),
                                     "pycode1m"));
  for (const kv::KvType type : {kv::KvType::kF32, kv::KvType::kF16, kv::KvType::kKivi4}) {
    const Outcome plain = run(**target, "autoregressive", type, 1, kCodePrompts);
    ASSERT_EQ(plain.tokens.size(), kCodePrompts.size());
    for (const char* strategy : {"draft", "draft-adaptive", "tree", "draft-sam", "bandit"}) {
      SCOPED_TRACE(std::string(kv::kv_type_name(type)) + " " + strategy);
      const Outcome spec = run(**target, strategy, type, 1, kCodePrompts, draft->get());
      const Outcome together = run(**target, strategy, type, 4, kCodePrompts, draft->get());
      ASSERT_EQ(spec.tokens.size(), kCodePrompts.size());
      ASSERT_EQ(together.tokens.size(), kCodePrompts.size());
      for (size_t i = 0; i < kCodePrompts.size(); ++i) {
        EXPECT_EQ(spec.tokens[i], plain.tokens[i]) << kCodePrompts[i];
        EXPECT_EQ(together.tokens[i], plain.tokens[i]) << kCodePrompts[i];
      }
      // The distilled draft agrees with the target most of the time: far fewer steps (not
      // asked of the bandit, which picks by measured speed).
      if (std::string_view(strategy) != "bandit") {
        EXPECT_LT(spec.steps * 2, plain.steps) << spec.steps << " vs " << plain.steps;
      }
    }
  }
}

// Every (layer, head)'s entries of two caches, bit for bit.
void expect_same_cache(const kv::KvCache& a, const kv::KvCache& b, int n_layers, int n_kv_heads,
                       int head_dim) {
  ASSERT_EQ(a.n_tokens(), b.n_tokens());
  for (int l = 0; l < n_layers; ++l) {
    for (int h = 0; h < n_kv_heads; ++h) {
      const int n = a.length(l, h);
      ASSERT_EQ(n, b.length(l, h)) << "layer " << l << " head " << h;
      std::vector<float> ka(static_cast<size_t>(n * head_dim)), va(ka.size()), kb(ka.size()),
          vb(ka.size());
      std::vector<int32_t> pa(static_cast<size_t>(n)), pb(pa.size());
      a.gather(l, h, ka.data(), va.data(), pa.data());
      b.gather(l, h, kb.data(), vb.data(), pb.data());
      ASSERT_EQ(pa, pb);
      ASSERT_EQ(0, std::memcmp(ka.data(), kb.data(), ka.size() * sizeof(float)));
      ASSERT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)));
    }
  }
}

TEST(Speculation, RollbackLeavesTheStateOfARunThatNeverDraftedTheRejectedTokens) {
  // After every verification (rejections included): the target's KV cache equals, bit for bit,
  // the cache of a plain evaluation of the accepted tokens; and each drafter, kept since the
  // start, proposes what a fresh drafter proposes for the same sequence (its state carries
  // nothing of the rejected drafts). Batch-invariant numerics, as speculation's identity claim.
  SessionOptions so;
  so.n_threads = 2;
  auto target = Session::open(test::shared_path("models/pycode/pycode7m.gguf"), so);
  ASSERT_TRUE(target.has_value());
  so.n_threads = 1;
  auto draft = Session::open(test::shared_path("models/pycode/pycode1m.gguf"), so);
  ASSERT_TRUE(draft.has_value());
  const model::Model& m = (*target)->model();
  const model::ModelConfig& cfg = m.config();
  model::ForwardOptions fo;
  fo.batch_invariant = true;
  decoding::DraftModelResources dr;
  dr.model = &(*draft)->model();
  dr.kv_pool =
      std::make_shared<kv::KvPool>(dr.model->kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  dr.pool = &(*draft)->pool();
  dr.forward = fo;
  dr.context_length = 256;
  decoding::NgramCache ngram_cache;
  decoding::DraftModelResources self = dr;  // layerskip: the target drafts for itself
  self.model = &m;
  self.kv_pool =
      std::make_shared<kv::KvPool>(m.kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  self.pool = &(*target)->pool();
  auto pool = std::make_shared<kv::KvPool>(m.kv_pool_options(kv::KvType::kF16, kv::KvType::kF16));
  // Model-free drafters with fixed lengths (their state is then the text alone: a fresh one
  // proposes the same) and with cost-aware lengths (draft_length.h: the cache check below).
  for (const auto& [name, fixed] : std::vector<std::pair<std::string, bool>>{{"draft", true},
                                                                             {"tree", true},
                                                                             {"layerskip", true},
                                                                             {"sam", true},
                                                                             {"ngram", true},
                                                                             {"draft-sam", true},
                                                                             {"sam", false},
                                                                             {"ngram", false}}) {
    decoding::StrategyContext ctx;
    ctx.draft_model = &dr;
    ctx.self_draft = &self;
    ctx.ngram_cache = &ngram_cache;
    ctx.fixed_draft_length = fixed;
    int rejections = 0;
    for (const std::string& prompt : {kCodePrompts[0], kCodePrompts[3]}) {
      SCOPED_TRACE(name + (fixed ? "" : " (cost-aware length)") + ": " + prompt);
      auto strategy = decoding::make_strategy(name, ctx);
      ASSERT_TRUE(strategy.has_value());
      decoding::SequenceState seq;
      seq.tokens = (*target)->tokenizer().encode(prompt, true);
      seq.n_prompt = static_cast<int>(seq.tokens.size());
      seq.n_vocab = cfg.n_vocab;
      sampling::SamplingParams sp;
      sp.temperature = 0;
      seq.sampler = sampling::SamplerChain::from_params(sp);
      seq.cache = kv::KvCache(pool, 256);
      model::ForwardWorkspace ws;
      std::vector<float> logits;
      std::vector<model::BatchEntry> entries;
      for (int i = 0; i < seq.n_prompt; ++i) {
        entries.push_back({seq.tokens[static_cast<size_t>(i)], i, 0, i + 1 == seq.n_prompt});
      }
      kv::KvCache* caches[] = {&seq.cache};
      ASSERT_TRUE(m.forward(entries, caches, logits, ws, (*target)->pool(), fo));
      (*strategy)->accept(seq, logits);
      while (seq.tokens.size() < static_cast<size_t>(seq.n_prompt + 24)) {
        entries.clear();
        (*strategy)->propose(seq, 16, entries);
        // A fresh drafter, given the same sequence, proposes the same entries. (The tree's size
        // and layerskip's adaptive length also follow the costs they measured, legitimately
        // their own history: for them the cache check below is the test.)
        if (name != "tree" && name != "layerskip" && fixed) {
          auto fresh = decoding::make_strategy(name, ctx);
          ASSERT_TRUE(fresh.has_value());
          std::vector<model::BatchEntry> fresh_entries;
          (*fresh)->propose(seq, 16, fresh_entries);
          ASSERT_EQ(fresh_entries.size(), entries.size());
          for (size_t i = 0; i < entries.size(); ++i) {
            ASSERT_EQ(fresh_entries[i].token, entries[i].token) << "entry " << i;
          }
        }
        ASSERT_TRUE(m.forward(entries, caches, logits, ws, (*target)->pool(), fo));
        const size_t before = seq.tokens.size();
        const int appended = (*strategy)->accept(seq, logits);
        if (static_cast<size_t>(appended) < entries.size()) ++rejections;
        ASSERT_EQ(seq.tokens.size(), before + static_cast<size_t>(appended));
        // The reference: the accepted tokens (all but the pending one) evaluated plainly.
        kv::KvCache reference(pool, 256);
        std::vector<model::BatchEntry> plain;
        for (size_t i = 0; i + 1 < seq.tokens.size(); ++i) {
          plain.push_back({seq.tokens[i], static_cast<int32_t>(i), 0, i + 2 == seq.tokens.size()});
        }
        kv::KvCache* ref_caches[] = {&reference};
        model::ForwardWorkspace ref_ws;
        std::vector<float> ref_logits;
        ASSERT_TRUE(m.forward(plain, ref_caches, ref_logits, ref_ws, (*target)->pool(), fo));
        ASSERT_NO_FATAL_FAILURE(
            expect_same_cache(seq.cache, reference, cfg.n_layers, cfg.n_kv_heads, cfg.head_dim));
      }
    }
    EXPECT_GT(rejections, 0) << "no rejection happened: nothing was rolled back";
  }
}

TEST(Speculation, SkipLayersMustKeepTheFirstAndLastLayer) {
  SessionOptions so;
  so.n_threads = 1;
  auto session = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(session.has_value());
  const model::Model& m = (*session)->model();
  std::vector<float> logits;
  for (const std::vector<uint8_t>& skip :
       {std::vector<uint8_t>{1, 0, 0, 0, 0}, std::vector<uint8_t>{0, 0, 0, 0, 1},
        std::vector<uint8_t>{0, 1, 0}}) {
    kv::KvCache cache = m.make_cache(16);
    model::ForwardOptions fo;
    fo.skip_layers = skip;
    const std::vector<int32_t> tokens = {1, 2, 3};
    auto st = m.forward(tokens, cache, logits, (*session)->pool(), fo);
    ASSERT_FALSE(st.has_value());
    EXPECT_NE(st.error().message.find("skip_layers"), std::string::npos) << st.error().message;
    EXPECT_EQ(cache.n_tokens(), 0);
  }
  // Skipping layers 1 and 3 runs, and changes the logits.
  kv::KvCache full = m.make_cache(16), skipped = m.make_cache(16);
  std::vector<float> a, b;
  const std::vector<int32_t> tokens = {1, 2, 3};
  ASSERT_TRUE(m.forward(tokens, full, a, (*session)->pool()));
  model::ForwardOptions fo;
  const std::vector<uint8_t> skip = {0, 1, 0, 1, 0};
  fo.skip_layers = skip;
  ASSERT_TRUE(m.forward(tokens, skipped, b, (*session)->pool(), fo));
  EXPECT_NE(a, b);
}

TEST(Speculation, DraftStrategiesNeedADraftModelAndItsVocabularyMustMatch) {
  SessionOptions so;
  so.n_threads = 1;
  auto session = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(session.has_value());
  auto scheduler = Scheduler::create((*session)->model(), (*session)->tokenizer(),
                                     (*session)->pool(), SchedulerOptions{});
  ASSERT_TRUE(scheduler.has_value());
  RequestParams p;
  p.strategy = "draft";
  auto id = (*scheduler)->submit({1, 2, 3}, p, {});
  ASSERT_FALSE(id.has_value());
  EXPECT_NE(id.error().message.find("needs a draft model"), std::string::npos)
      << id.error().message;
  // Through the public API: a draft whose vocabulary differs fails the load, naming both files.
  LoadOptions lo;
  lo.n_threads = 1;
  lo.draft_model_path = test::shared_path("models/stories260K/stories260K.gguf");
  auto engine = Engine::load(test::shared_path("models/pycode/pycode7m.gguf"), lo);
  ASSERT_FALSE(engine.has_value());
  EXPECT_NE(engine.error().message.find("vocabulary"), std::string::npos) << engine.error().message;
  EXPECT_NE(engine.error().message.find("512 tokens, the target has 4096"), std::string::npos)
      << engine.error().message;
  // A draft weight type: refused before any load when unknown or with no draft model.
  lo.draft_model_path = test::shared_path("models/pycode/pycode1m.gguf");
  lo.draft_weight_type = "q5_1";
  engine = Engine::load(test::shared_path("models/pycode/pycode7m.gguf"), lo);
  ASSERT_FALSE(engine.has_value());
  EXPECT_NE(engine.error().message.find("unknown weight type 'q5_1'"), std::string::npos)
      << engine.error().message;
  lo.draft_model_path.clear();
  lo.draft_weight_type = "q8_0";
  engine = Engine::load(test::shared_path("models/pycode/pycode7m.gguf"), lo);
  ASSERT_FALSE(engine.has_value());
  EXPECT_NE(engine.error().message.find("given without a draft model"), std::string::npos)
      << engine.error().message;
}

// Sampled requests (seeds 1..n): the counts of the tokens at generated positions 0 and 1, and
// the speculation totals.
struct Sampled {
  std::map<int32_t, int64_t> first, second;
  int64_t drafted = 0, accepted = 0;
};

Sampled sample_requests(Session& target, Session* draft, const std::string& strategy,
                        float temperature, int n, const std::string& prompt_text,
                        bool batch_invariant = false) {
  SchedulerOptions o;
  o.max_sequences = 16;
  o.draft_max = 4;
  o.max_queue = n;
  // llama.cpp's order by default: a distribution test needs no bit-identity (and is faster).
  o.forward.batch_invariant = batch_invariant;
  if (draft != nullptr) {
    o.draft_model = &draft->model();
    o.draft_pool = &draft->pool();
  }
  auto scheduler = Scheduler::create(target.model(), target.tokenizer(), target.pool(), o);
  EXPECT_TRUE(scheduler.has_value());
  Sampled out;
  if (!scheduler) return out;
  const std::vector<int32_t> prompt = target.tokenizer().encode(prompt_text, true);
  for (int i = 0; i < n; ++i) {
    RequestParams p;
    p.sampling.temperature = temperature;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    p.sampling.seed = static_cast<uint64_t>(i + 1);
    p.max_tokens = 2;
    p.ignore_eos = true;
    p.strategy = strategy;
    RequestCallbacks cb;
    cb.on_done = [&out](const RequestResult& r) {
      if (r.tokens.size() > 0) ++out.first[r.tokens[0]];
      if (r.tokens.size() > 1) ++out.second[r.tokens[1]];
      out.drafted += r.speculation.drafted;
      out.accepted += r.speculation.accepted;
    };
    EXPECT_TRUE((*scheduler)->submit(prompt, p, std::move(cb)).has_value());
  }
  while ((*scheduler)->has_work()) EXPECT_TRUE((*scheduler)->step().has_value());
  return out;
}

// Two-sample chi-square statistic and its degrees of freedom; categories with fewer than 10
// observations in both samples together are pooled into one.
std::pair<double, int> two_sample_chi_square(const std::map<int32_t, int64_t>& a,
                                             const std::map<int32_t, int64_t>& b) {
  std::map<int32_t, std::pair<double, double>> cells;
  for (const auto& [t, c] : a) cells[t].first += static_cast<double>(c);
  for (const auto& [t, c] : b) cells[t].second += static_cast<double>(c);
  std::vector<std::pair<double, double>> bins;
  std::pair<double, double> rare{0, 0};
  for (const auto& [t, c] : cells) {
    if (c.first + c.second < 10) {
      rare.first += c.first;
      rare.second += c.second;
    } else {
      bins.push_back(c);
    }
  }
  if (rare.first + rare.second > 0) bins.push_back(rare);
  double na = 0, nb = 0;
  for (const auto& c : bins) {
    na += c.first;
    nb += c.second;
  }
  double x2 = 0;
  for (const auto& c : bins) {
    const double total = c.first + c.second;
    const double ea = total * na / (na + nb), eb = total * nb / (na + nb);
    x2 += (c.first - ea) * (c.first - ea) / ea + (c.second - eb) * (c.second - eb) / eb;
  }
  return {x2, static_cast<int>(bins.size()) - 1};
}

// Upper bound on chi-square with df degrees of freedom at a one-in-a-million false alarm rate
// (Wilson-Hilferty with z = 4.75).
double chi_square_limit(int df) {
  const double k = df;
  const double t = 1 - 2 / (9 * k) + 4.75 * std::sqrt(2 / (9 * k));
  return k * t * t * t;
}

TEST(Speculation, SampledOutputFollowsPlainSamplingsDistribution) {
  // stories260K (512 tokens) as the target; its Q8_0 quantization drafts (same vocabulary, a
  // close but different distribution q). First and second generated tokens of 2000 requests.
  SessionOptions so;
  so.n_threads = 1;
  auto target = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(target.has_value());
  auto draft = Session::open(test::shared_path("models/stories260K/stories260K-Q8_0.gguf"), so);
  ASSERT_TRUE(draft.has_value());
  constexpr int kRequests = 2000;
  const std::string prompt = "Once upon a time, there was a little";
  const Sampled plain =
      sample_requests(**target, nullptr, "autoregressive", 1.0f, kRequests, prompt);
  const Sampled colder =
      sample_requests(**target, nullptr, "autoregressive", 0.8f, kRequests, prompt);
  {
    const auto [x2, df] = two_sample_chi_square(plain.second, colder.second);
    EXPECT_GT(x2, chi_square_limit(df)) << "the test cannot tell temperature 0.8 from 1.0";
  }
  // "tree" samples through the draft's argmax chain (q one-hot); ngram/sam are one-hot too.
  for (const char* strategy : {"draft", "tree", "sam", "ngram", "draft-sam"}) {
    SCOPED_TRACE(strategy);
    const Sampled spec = sample_requests(**target, draft->get(), strategy, 1.0f, kRequests, prompt);
    if (std::string_view(strategy) != "sam" && std::string_view(strategy) != "ngram") {
      EXPECT_GT(spec.accepted, 0) << "nothing was accepted: the test would prove nothing";
      EXPECT_LT(spec.accepted, spec.drafted) << "nothing was rejected";
    }
    for (const auto& [a, b] :
         {std::pair{&plain.first, &spec.first}, {&plain.second, &spec.second}}) {
      const auto [x2, df] = two_sample_chi_square(*a, *b);
      EXPECT_LT(x2, chi_square_limit(df)) << "df " << df;
    }
  }
}

TEST(Speculation, ADraftOfTheTargetsOwnDistributionIsAlwaysAccepted) {
  // The target drafts for itself (batch-invariant: the draft's q equals the target's p bit for
  // bit), sampled: min(1, p/q) = 1, so every draft token passes.
  SessionOptions so;
  so.n_threads = 1;
  auto target = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(target.has_value());
  auto same = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  ASSERT_TRUE(same.has_value());
  const Sampled s = sample_requests(**target, same->get(), "draft", 1.0f, 50, "Once upon a time",
                                    /*batch_invariant=*/true);
  EXPECT_GT(s.drafted, 0);
  EXPECT_EQ(s.accepted, s.drafted);
}

}  // namespace
}  // namespace speculation_test
}  // namespace pareto::engine
