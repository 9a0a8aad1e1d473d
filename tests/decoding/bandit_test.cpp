// The bandit over drafters (bandit.h) with scripted arms: it settles on the arm that pays, counts
// no-room steps as plain decoding, falls back to plain decoding, judges arms by their tokens over
// their seconds, and plays an arm that must catch up in epochs.
#include "decoding/bandit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace pareto::decoding {
namespace bandit_test {
namespace {

// An arm that always drafts the token the test's target will accept (`right`) or never does.
class ConstantDrafter final : public Drafter {
 public:
  ConstantDrafter(std::string name, int32_t token) : name_(std::move(name)), token_(token) {}
  std::string_view name() const override { return name_; }
  void draft(const SequenceState&, int max_tokens, Draft& out) override {
    for (int i = 0; i < max_tokens; ++i) out.tokens.push_back(token_);
  }

 private:
  std::string name_;
  int32_t token_;
};

TEST(BanditDrafter, SettlesOnTheArmThatPays) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<ConstantDrafter>("wrong", 2));
  arms.push_back(std::make_unique<ConstantDrafter>("right", 3));
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens = {1};
  for (int step = 0; step < 300; ++step) {
    Draft d;
    bandit.draft(s, 4, d);
    // The target always continues with 3: the "right" arm's 4 drafts pass, "wrong" gets none.
    const int accepted = !d.tokens.empty() && d.tokens[0] == 3 ? 4 : 0;
    // Verification time grows with the entries: 1 ms + 0.1 ms per draft token.
    bandit.verified(s, {static_cast<int>(d.tokens.size()), accepted,
                        1e-3 + 1e-4 * static_cast<double>(d.tokens.size())});
  }
  const auto& a = bandit.arms();
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[2].name, "none");
  EXPECT_GT(a[1].pulls, 250) << "wrong " << a[0].pulls << " none " << a[2].pulls;
  EXPECT_GE(a[0].pulls, 1);
  EXPECT_GE(a[2].pulls - a[2].scored, 1);  // played once (the first-pull rule)
}

// The text of these runs counts up: after token t comes t + 1. A drafter proposing
// `right` tokens of that count, then wrong ones (0), `length` in all.
class CountingDrafter final : public Drafter {
 public:
  CountingDrafter(std::string name, int right, int length, bool free)
      : name_(std::move(name)), right_(right), length_(length), free_(free) {}
  std::string_view name() const override { return name_; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override {
    for (int i = 0; i < std::min(max_tokens, length_); ++i) {
      out.tokens.push_back(i < right_ ? seq.tokens.back() + 1 + i : 0);
    }
  }
  void verified(const SequenceState&, const Verification& v) override {
    told_drafted += v.drafted;
    told_accepted += v.accepted;
    told_seconds += v.verify_seconds;
  }
  bool free_to_ask() const override { return free_; }
  int told_drafted = 0, told_accepted = 0;
  double told_seconds = 0;

 private:
  std::string name_;
  int right_, length_;
  bool free_;
};

// Free arms are scored against the text the sequence goes on with, never played to be explored:
// "wrong" (no token passes) is never played; "half" (its first 2 of 4 pass) is scored 3 tokens
// a step, in the verification time of 5 entries as measured (1 ms + 0.1 ms a draft token), and
// both are told of their scores. The played "right" arm (costly) drafts 4 that all pass. The text
// counts up, so a score read one position off would find no match.
TEST(BanditDrafter, ScoresFreeArmsWithoutPlayingThem) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<CountingDrafter>("wrong", 0, 4, true));
  arms.push_back(std::make_unique<CountingDrafter>("right", 4, 4, false));
  arms.push_back(std::make_unique<CountingDrafter>("half", 2, 4, true));
  auto* wrong = static_cast<CountingDrafter*>(arms[0].get());
  auto* half = static_cast<CountingDrafter*>(arms[2].get());
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens = {1};
  for (int step = 0; step < 300; ++step) {
    Draft d;
    bandit.draft(s, 4, d);
    int accepted = 0;
    while (accepted < static_cast<int>(d.tokens.size()) &&
           d.tokens[static_cast<size_t>(accepted)] == s.tokens.back() + 1 + accepted) {
      ++accepted;
    }
    for (int i = 0; i <= accepted; ++i) s.tokens.push_back(s.tokens.back() + 1);  // then verified
    bandit.verified(s, {static_cast<int>(d.tokens.size()), accepted,
                        1e-3 + 1e-4 * static_cast<double>(d.tokens.size())});
  }
  const auto& a = bandit.arms();
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].pulls - a[0].scored, 0);
  EXPECT_EQ(a[2].pulls - a[2].scored, 0);
  // Asked every step until kAskEveryStep pulls, then every kAskPeriod-th step.
  EXPECT_GT(a[0].scored, 100);
  EXPECT_GT(a[2].scored, 100);
  EXPECT_EQ(a[0].tokens, static_cast<double>(a[0].pulls));        // 0 passed + 1 a step
  EXPECT_EQ(a[2].tokens, 3.0 * static_cast<double>(a[2].pulls));  // 2 passed + 1
  // Each score's verification: 5 entries at 1 ms + 0.1 ms a draft token (the fit is exact here).
  EXPECT_NEAR(half->told_seconds / static_cast<double>(a[2].scored), 1.4e-3, 1e-6);
  EXPECT_GT(a[1].pulls, 290);  // "right" played throughout
  EXPECT_EQ(wrong->told_drafted, 4 * static_cast<int>(a[0].scored));
  EXPECT_EQ(wrong->told_accepted, 0);
  EXPECT_EQ(half->told_accepted, 2 * static_cast<int>(a[2].scored));
  // "none" is scored too (one token in a one-entry verification): played at most once.
  EXPECT_LE(a[3].pulls - a[3].scored, 1);
  EXPECT_GT(a[3].scored, 250);
}

// A step that may not draft (max_tokens 0) is plain decoding: it counts for "none", not for the
// arm whose turn it was.
TEST(BanditDrafter, StepsWithNoRoomToDraftCountAsPlainDecoding) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<ConstantDrafter>("right", 3));
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens = {1};
  for (int step = 0; step < 10; ++step) {
    Draft d;
    bandit.draft(s, 0, d);
    EXPECT_TRUE(d.tokens.empty());
    bandit.verified(s, {0, 0, 1e-3});
  }
  EXPECT_EQ(bandit.arms()[0].pulls, 0);
  EXPECT_EQ(bandit.arms()[1].pulls, 10);
}

TEST(BanditDrafter, FallsBackToPlainDecodingWhenNoDrafterPays) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<ConstantDrafter>("wrong", 2));
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens = {1};
  for (int step = 0; step < 300; ++step) {
    Draft d;
    bandit.draft(s, 8, d);
    bandit.verified(s, {static_cast<int>(d.tokens.size()), 0,
                        1e-3 + 2e-4 * static_cast<double>(d.tokens.size())});
  }
  // Played, not scored ("none" is also scored on the steps it is not played).
  EXPECT_GT(bandit.arms()[1].pulls - bandit.arms()[1].scored, 200)
      << "wrong " << bandit.arms()[0].pulls;
}

// An arm whose drafts alternate: one token (the target accepts it), then eight (all rejected).
class AlternatingDrafter final : public Drafter {
 public:
  std::string_view name() const override { return "alternating"; }
  void draft(const SequenceState&, int max_tokens, Draft& out) override {
    const int n = std::min(max_tokens, (calls_++ % 2 == 0) ? 1 : 8);
    for (int i = 0; i < n; ++i) out.tokens.push_back(3);
  }

 private:
  int calls_ = 0;
};

// Plain decoding costs 1 ms a token, a draft 0.2 ms a token more in verification, every step's
// time times noise uniform in [1 - jitter, 1 + jitter] (a shared machine). The alternating arm's
// short drafts pass (2 tokens in 1.2 ms) and its long ones fail (1 token in 2.6 ms): 0.79x plain
// decoding, though its per-step rates average 1.03x. Returns the run's tokens per second over
// plain decoding's 1000.
double run_bandit(uint32_t seed, int steps, double jitter) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<AlternatingDrafter>());
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens = {1};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> noise(1 - jitter, 1 + jitter);
  double tokens = 0, seconds = 0;
  for (int step = 0; step < steps; ++step) {
    Draft d;
    bandit.draft(s, 8, d);
    const int n = static_cast<int>(d.tokens.size());
    const int accepted = n == 1 ? 1 : 0;
    const double t = (1e-3 + 2e-4 * n) * noise(rng);
    bandit.verified(s, {n, accepted, t});
    tokens += accepted + 1;
    seconds += t;
  }
  return tokens / seconds / 1000.0;
}

// The alternating arm loses (0.79x), but the mean of its per-step rates, (1667 + 385) / 2 = 1026
// tokens/s, beats plain decoding's 1000 (checked: the bandit judging by it fails this test): judged
// by that mean the bandit would keep it. Judged by its tokens over its seconds it keeps plain
// decoding, with or without noisy timings.
TEST(BanditDrafter, JudgesArmsByTheirTokensOverTheirSeconds) {
  for (double jitter : {0.0, 0.4}) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      EXPECT_GE(run_bandit(seed, 1500, jitter), 0.95) << "jitter " << jitter << " seed " << seed;
    }
  }
}

// A drafter with state of its own to keep up (as the draft model's cache): it lags by the tokens
// the sequence gained since it last drafted. It drafts `length` copies of `token`. A catch-up of
// kEpochLag tokens or more reports `catch_up_seconds` (simulated: nothing sleeps), added to
// `spent`; shorter ones are part of its drafts.
class LaggingDrafter final : public Drafter {
 public:
  // `seen`: tokens it has taken in already.
  LaggingDrafter(int32_t token, int length, int seen = 0, double catch_up_seconds = 0)
      : token_(token), length_(length), seen_(seen), catch_up_seconds_(catch_up_seconds) {}
  std::string_view name() const override { return "lagging"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override {
    seen_ = static_cast<int>(seq.tokens.size());
    for (int i = 0; i < std::min(max_tokens, length_); ++i) out.tokens.push_back(token_);
  }
  int lag(const SequenceState& seq) const override {
    return static_cast<int>(seq.tokens.size()) - seen_;
  }
  double catch_up(const SequenceState& seq) override {
    if (lag(seq) - 1 < BanditDrafter::kEpochLag) return 0;
    seen_ = static_cast<int>(seq.tokens.size()) - 1;
    ++catch_ups;
    spent += catch_up_seconds_;
    return catch_up_seconds_;
  }
  int catch_ups = 0;
  double spent = 0;

 private:
  int32_t token_;
  int length_;
  int seen_ = 0;
  double catch_up_seconds_;
};

// Chosen with a lag of kEpochLag tokens or more, an arm drafts kEpochSteps steps in a row; a step
// with no room to draft inside the epoch counts for "none" and leaves the epoch to the steps
// after it; chosen without a lag, it is chosen afresh the next step.
TEST(BanditDrafter, PlaysAnArmThatMustCatchUpForAnEpoch) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<LaggingDrafter>(3, 2));
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens.assign(40, 1);  // a prompt: the lagging arm has seen none of it
  std::vector<std::string> pulled;
  const auto step = [&](int max_tokens, int accepted) {
    Draft d;
    bandit.draft(s, max_tokens, d);
    pulled.push_back(d.tokens.empty() ? "none" : "lagging");
    bandit.verified(s, {static_cast<int>(d.tokens.size()), accepted, 1e-3});
    s.tokens.insert(s.tokens.end(), static_cast<size_t>(accepted) + 1, 3);
  };
  step(8, 2);  // every arm once first: "lagging" (lag 40), which starts an epoch
  step(8, 2);
  step(0, 0);  // no room: "none" (its first pull), the epoch waits
  step(8, 2);
  step(8, 2);  // the epoch's fourth step
  ASSERT_EQ(BanditDrafter::kEpochSteps, 4);
  EXPECT_EQ(pulled, (std::vector<std::string>{"lagging", "lagging", "none", "lagging", "lagging"}));
  EXPECT_EQ(bandit.arms()[0].pulls, 4);
  // Played once; the other pulls of "none" are steps scored without playing it.
  EXPECT_EQ(bandit.arms()[1].pulls - bandit.arms()[1].scored, 1);
}

// Chosen with little lag, an arm is no epoch: the next step chooses afresh (here "none", which
// has yet to be pulled once).
TEST(BanditDrafter, AnArmChosenWithoutLagIsChosenAfreshNextStep) {
  std::vector<std::unique_ptr<Drafter>> arms;
  arms.push_back(std::make_unique<LaggingDrafter>(3, 2, /*seen=*/38));
  BanditDrafter bandit(std::move(arms));
  SequenceState s;
  s.tokens.assign(40, 1);  // lag 2
  std::vector<size_t> drafted;
  for (int step = 0; step < 2; ++step) {
    Draft d;
    bandit.draft(s, 8, d);
    drafted.push_back(d.tokens.size());
    bandit.verified(s, {static_cast<int>(d.tokens.size()), 0, 1e-3});
    s.tokens.push_back(3);
  }
  EXPECT_EQ(drafted, (std::vector<size_t>{2, 0}));
}

// Requests of a code workload, simulated: an arm with nothing to catch up ("fast": 3 tokens a
// draft, each passing at 55%) and a drafter with a cache to keep ("lagging": 3 tokens passing at
// `lagging_pass`, `lagging_token_ms` a draft token, and 4 ms to catch up on a request's prompt or
// on what it sat out), plain decoding 1 ms a token, one more verified entry 0.15 ms. Steady rates:
// fast 1.39x plain; lagging 1.26x at 80% and 0.3 ms (a catch-up is four plain steps), 1.81x at
// 90% and 0.15 ms. 12 requests of a 120-token prompt and 96 new tokens share one BanditMemory.
// Returns tokens per second over plain decoding's; `catch_ups` counts the lagging arm's catch-ups
// (printed when a test fails).
double run_requests(int epoch_steps, uint32_t seed, int& catch_ups, double lagging_pass = 0.8,
                    double lagging_token_ms = 0.3) {
  BanditMemory memory;
  std::mt19937 rng(seed);
  std::bernoulli_distribution fast_pass(0.55), lagging_passes(lagging_pass);
  double tokens = 0, seconds = 0;
  catch_ups = 0;
  for (int request = 0; request < 12; ++request) {
    std::vector<std::unique_ptr<Drafter>> arms;
    arms.push_back(std::make_unique<ConstantDrafter>("fast", 3));
    auto owned = std::make_unique<LaggingDrafter>(4, 3, 0, 4e-3);
    LaggingDrafter& lagging = *owned;
    arms.push_back(std::move(owned));
    // A stopped clock: only the simulated times count, whatever the host (a sanitizer build).
    BanditDrafter bandit(std::move(arms), &memory, epoch_steps, [] { return 0.0; });
    SequenceState s;
    s.tokens.assign(120, 1);
    for (int generated = 0; generated < 96;) {
      Draft d;
      bandit.draft(s, 3, d);
      int n = static_cast<int>(d.tokens.size());
      double t = 1e-3;
      const bool lagging_drafted = n > 0 && d.tokens[0] == 4;  // it alone drafts 4s
      if (lagging_drafted) t += lagging_token_ms * 1e-3 * n;
      int accepted = 0;
      while (accepted < n && (lagging_drafted ? lagging_passes(rng) : fast_pass(rng))) ++accepted;
      t += 0.15e-3 * n;
      bandit.verified(s, {n, accepted, t});
      s.tokens.insert(s.tokens.end(), static_cast<size_t>(accepted) + 1, 3);
      generated += accepted + 1;
      tokens += accepted + 1;
      seconds += t;
    }
    catch_ups += lagging.catch_ups;
    seconds += lagging.spent;
  }
  return tokens / seconds / 1000.0;
}

// Played in epochs, the lagging arm is judged by what it costs running, not by its catch-ups
// (without epochs nearly every pull of it is a catch-up, 3 tokens in ~6.6 ms, and the bandit
// may even settle on plain decoding), and the run is faster: over 8 seeds a higher mean rate, and
// within 12% of the fast arm alone (1.39x plain). (The bandit also times the arms' draft calls,
// microseconds against the simulated milliseconds.)
TEST(BanditDrafter, EpochsAmortizeCatchUps) {
  double with = 0, without = 0;
  std::string runs;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    int c1 = 0, c4 = 0;
    const double r1 = run_requests(1, seed, c1);
    const double r4 = run_requests(BanditDrafter::kEpochSteps, seed, c4);
    with += r4 / 8;
    without += r1 / 8;
    runs += " " + std::to_string(r1) + "/" + std::to_string(r4) + " (catch-ups " +
            std::to_string(c1) + "/" + std::to_string(c4) + ")";
  }
  EXPECT_GT(with, without) << runs;
  EXPECT_GE(with, 0.88 * 1.39) << runs;  // measured: 1.325 over these 8 seeds
}

// The lagging arm the better one (90% at 0.15 ms a draft token: 1.81x plain steady, against the
// fast arm's 1.39x): its catch-ups are switching costs, not its rate, so the bandit settles on it
// and keeps within a few percent of it alone.
TEST(BanditDrafter, KeepsALaggingArmThatPaysBest) {
  double mean = 0;
  std::string runs;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    int c = 0;
    const double r = run_requests(BanditDrafter::kEpochSteps, seed, c, 0.9, 0.15);
    mean += r / 8;
    runs += " " + std::to_string(r) + " (catch-ups " + std::to_string(c) + ")";
  }
  // Alone it makes 1.81x steady, about 1.68x with its one catch-up per request. Measured: 1.625
  // over these seeds; judging the leader by the rate of an epoch that starts with its catch-up
  // (as the arms that explore are) gave 1.43: the bandit then stayed on the fast arm.
  EXPECT_GE(mean, 0.95 * 1.68) << runs;
}

}  // namespace
}  // namespace bandit_test
}  // namespace pareto::decoding
