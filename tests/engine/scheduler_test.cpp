// The step loop on stories260K: requests decoded together (continuous batching, chunked prefill)
// get the tokens they get alone; cancellation mid-prompt and mid-decode returns every page; a full
// queue, an oversized prompt and an exhausted page pool fail only the request concerned; stop
// strings and token limits end a request where they should.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "engine/session.h"
#include "test_util.h"

namespace pareto::engine {
namespace scheduler_test {
namespace {

std::unique_ptr<Session> open_stories() {
  SessionOptions so;
  so.n_threads = 2;
  auto s = Session::open(test::shared_path("models/stories260K/stories260K.gguf"), so);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

std::unique_ptr<Scheduler> make_scheduler(Session& session, SchedulerOptions options) {
  auto s = Scheduler::create(session.model(), session.tokenizer(), session.pool(), options);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

RequestParams greedy(int n) {
  RequestParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = n;
  return p;
}

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog ran to the park and",
                                           "Lily", "One day, a big red ball"};

// Submits every prompt at once and steps until all are done; results by submission order.
std::vector<RequestResult> run_all(Session& session, Scheduler& scheduler,
                                   const std::vector<std::string>& prompts,
                                   const RequestParams& params) {
  std::map<uint64_t, RequestResult> done;
  std::vector<uint64_t> ids;
  for (const std::string& p : prompts) {
    RequestCallbacks cb;
    cb.on_done = [&done](const RequestResult& r) { done[r.id] = r; };
    auto id = scheduler.submit(session.tokenizer().encode(p, true), params, std::move(cb));
    EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
    if (id) ids.push_back(*id);
  }
  for (int guard = 0; scheduler.has_work() && guard < 10000; ++guard) {
    auto st = scheduler.step();
    EXPECT_TRUE(st.has_value()) << (st ? "" : st.error().message);
  }
  std::vector<RequestResult> out;
  for (uint64_t id : ids) out.push_back(done[id]);
  return out;
}

// Each prompt alone (one sequence at a time, whole prompt in one step) against all of them
// together in steps of at most 8 entries, so prompts are split into chunks and join the decodes of
// the others while those run.
void expect_together_equals_alone(const RequestParams& params, bool batch_invariant) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions alone_opts;
  alone_opts.max_sequences = 1;
  alone_opts.forward.batch_invariant = batch_invariant;
  SchedulerOptions together_opts = alone_opts;
  together_opts.max_sequences = 4;
  together_opts.step_tokens = 8;
  auto alone = make_scheduler(*session, alone_opts);
  auto together = make_scheduler(*session, together_opts);
  const auto a = run_all(*session, *alone, kPrompts, params);
  const auto t = run_all(*session, *together, kPrompts, params);
  ASSERT_EQ(a.size(), kPrompts.size());
  ASSERT_EQ(t.size(), kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ(a[i].tokens, t[i].tokens) << kPrompts[i];
    EXPECT_EQ(a[i].text, t[i].text) << kPrompts[i];
    EXPECT_EQ(t[i].stop_reason, StopReason::kMaxTokens);
    EXPECT_EQ(t[i].tokens.size(), 24u);
  }
  EXPECT_EQ(together->kv_pool().pages_in_use(), 0);
  EXPECT_EQ(together->counters().generated_tokens, 4 * 24);
}

// KIVI caches quantize groups between forwards, so in the batch-invariant mode a prompt's chunks
// stop where a group would be quantized: alone (whole prompts) and together (chunks of at most 8
// entries, split where the other requests leave room) every prompt token sees the same cache.
TEST(Scheduler, KiviCachesTogetherGetTheirAloneTokensWhenBatchInvariant) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions alone_opts;
  alone_opts.max_sequences = 1;
  alone_opts.forward.batch_invariant = true;
  alone_opts.key_type = alone_opts.value_type = kv::KvType::kKivi2;
  alone_opts.kivi_group = 4;
  alone_opts.kivi_residual = 0;
  SchedulerOptions together_opts = alone_opts;
  together_opts.max_sequences = 4;
  together_opts.step_tokens = 8;
  auto alone = make_scheduler(*session, alone_opts);
  auto together = make_scheduler(*session, together_opts);
  const std::vector<std::string> prompts = {
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends every day.",
      "The little dog ran to the park and", "One day, a big red ball rolled down the hill"};
  const auto a = run_all(*session, *alone, prompts, greedy(48));
  const auto t = run_all(*session, *together, prompts, greedy(48));
  ASSERT_EQ(t.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(a[i].tokens, t[i].tokens) << prompts[i];
  EXPECT_EQ(together->kv_pool().pages_in_use(), 0);
}

TEST(Scheduler, GreedyRequestsTogetherGetTheirAloneTokens) {
  expect_together_equals_alone(greedy(24), false);
}

// Sampling: each request draws from its own seeded RNG, so what it draws does not depend on the
// other requests (in the batch-invariant mode its logits do not either; that they are bit-identical
// is tested in tests/model/batch_forward_test.cpp).
TEST(Scheduler, SampledRequestsTogetherDrawFromTheirOwnRng) {
  RequestParams p;
  p.max_tokens = 24;
  p.sampling.temperature = 1.0f;
  p.sampling.seed = 11;
  expect_together_equals_alone(p, true);
}

TEST(Scheduler, CancelMidPromptAndMidDecodeReturnsEveryPage) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.step_tokens = 4;
  auto s = make_scheduler(*session, o);
  std::map<uint64_t, StopReason> reasons;
  RequestCallbacks cb;
  cb.on_done = [&reasons](const RequestResult& r) { reasons[r.id] = r.stop_reason; };
  const auto prompt = session->tokenizer().encode(kPrompts[1], true);
  ASSERT_GT(prompt.size(), 8u);
  auto a = s->submit(prompt, greedy(100), cb);
  auto b = s->submit(session->tokenizer().encode("Lily", true), greedy(100), cb);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(s->step().has_value());  // a's first prompt chunk only (budget 4)
  EXPECT_GT(s->kv_pool().pages_in_use(), 0);
  s->cancel(*a);  // mid-prompt
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(s->step().has_value());
  EXPECT_EQ(reasons.at(*a), StopReason::kCancelled);
  EXPECT_EQ(reasons.count(*b), 0u);  // b is decoding
  EXPECT_EQ(s->counters().running, 1);
  s->cancel(*b);  // mid-decode
  ASSERT_TRUE(s->step().has_value());
  EXPECT_EQ(reasons.at(*b), StopReason::kCancelled);
  EXPECT_FALSE(s->has_work());
  EXPECT_EQ(s->kv_pool().pages_in_use(), 0);
  s->cancel(12345);  // unknown: ignored
  ASSERT_TRUE(s->step().has_value());
}

TEST(Scheduler, FullQueueIsItsOwnErrorCode) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.max_queue = 1;
  auto s = make_scheduler(*session, o);
  const auto prompt = session->tokenizer().encode("Lily", true);
  ASSERT_TRUE(s->submit(prompt, greedy(4), {}).has_value());
  auto full = s->submit(prompt, greedy(4), {});
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(full.error().message.find("queue full"), std::string::npos) << full.error().message;
}

TEST(Scheduler, OversizedPromptFailsAloneAndContextFullEndsOnlyItsRequest) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.context_length = 12;
  auto s = make_scheduler(*session, o);
  const auto long_prompt = session->tokenizer().encode(kPrompts[1], true);
  ASSERT_GT(long_prompt.size(), 12u);
  auto too_long = s->submit(long_prompt, greedy(4), {});
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code, ErrorCode::kContextOverflow);
  EXPECT_NE(too_long.error().message.find(
                str_cat("prompt has ", long_prompt.size(), " tokens, context is 12")),
            std::string::npos);
  // Two requests: one fills its context, the other stops at its token limit first.
  const auto results = run_all(*session, *s, {"Once upon a time", "Lily"}, greedy(-1));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].stop_reason, StopReason::kContextFull);
  // A context of C positions holding P prompt tokens yields C - P + 1 tokens (the last one is
  // never evaluated).
  EXPECT_EQ(results[0].tokens.size(), 12 - results[0].prompt_tokens.size() + 1);
  EXPECT_EQ(s->kv_pool().pages_in_use(), 0);
}

TEST(Scheduler, ExhaustedPagePoolFailsTheRequestCleanly) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.max_kv_pages = 5 * 4 * 2;  // layers x kv heads x 2 pages of 16: 32 positions per sequence
  auto s = make_scheduler(*session, o);
  const auto results = run_all(*session, *s, {"Once upon a time"}, greedy(60));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].stop_reason, StopReason::kError);
  ASSERT_TRUE(results[0].error.has_value());
  EXPECT_EQ(results[0].error->code, ErrorCode::kResourceExhausted);
  EXPECT_GT(results[0].tokens.size(), 20u);  // it ran until the pool was full
  EXPECT_EQ(s->kv_pool().pages_in_use(), 0);
}

TEST(Scheduler, StopStringEndsTheTextBeforeIt) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  auto s = make_scheduler(*session, {});
  const auto plain = run_all(*session, *s, {"Once upon a time"}, greedy(40));
  ASSERT_EQ(plain.size(), 1u);
  const std::string& text = plain[0].text;
  const size_t at = text.find("Lily");
  ASSERT_NE(at, std::string::npos) << text;
  RequestParams p = greedy(40);
  p.stop = {"zzz-never", "Lily"};
  std::string streamed;
  RequestCallbacks cb;
  RequestResult result;
  cb.on_token = [&streamed](std::string_view piece, int32_t) {
    streamed += piece;
    return true;
  };
  cb.on_done = [&result](const RequestResult& r) { result = r; };
  ASSERT_TRUE(s->submit(session->tokenizer().encode("Once upon a time", true), p, cb));
  while (s->has_work()) ASSERT_TRUE(s->step().has_value());
  EXPECT_EQ(result.stop_reason, StopReason::kStopString);
  EXPECT_EQ(result.text, text.substr(0, at));
  EXPECT_EQ(streamed, result.text);  // nothing of the stop string was streamed
}

TEST(Scheduler, BadOptionsAndTypesAreErrors) {
  auto session = open_stories();
  ASSERT_NE(session, nullptr);
  SchedulerOptions o;
  o.key_type = kv::KvType::kQ8_0;  // stories260K's head size is 8
  auto bad = Scheduler::create(session->model(), session->tokenizer(), session->pool(), o);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kUnsupported);
  auto s = make_scheduler(*session, {});
  RequestParams p = greedy(4);
  p.strategy = "nope";
  auto r = s->submit(session->tokenizer().encode("Lily", true), p, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("valid: autoregressive"), std::string::npos);
  auto empty = s->submit({}, greedy(4), {});
  ASSERT_FALSE(empty.has_value());
}

}  // namespace
}  // namespace scheduler_test
}  // namespace pareto::engine
