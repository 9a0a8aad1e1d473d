// The speculative pieces without a model: the suffix automaton against a brute-force search, the
// rejection-sampling step against the target distribution (chi-square, with a negative control
// showing the test detects a biased rule), and SpeculativeStrategy's accept/rollback/statistics
// with a scripted drafter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>

#include "decoding/ngram.h"
#include "decoding/speculative.h"
#include "decoding/suffix_automaton.h"

namespace pareto::decoding {
namespace {

// The longest suffix of text that also ends at an earlier position, by brute force: its length.
int brute_match_length(const std::vector<int32_t>& text) {
  const auto n = static_cast<int>(text.size());
  int best = 0;
  for (int end = 0; end + 1 < n; ++end) {  // an occurrence ending at `end` (< n - 1)
    int len = 0;
    while (len <= end &&
           text[static_cast<size_t>(end - len)] == text[static_cast<size_t>(n - 1 - len)]) {
      ++len;
    }
    best = std::max(best, len);
  }
  return best;
}

TEST(SuffixAutomaton, TracksTheLongestEarlierSuffixMatchOnRandomTexts) {
  std::mt19937 rng(20261204);
  for (int alphabet : {2, 3, 5, 50}) {
    SuffixAutomaton sam;
    std::vector<int32_t> text;
    for (int i = 0; i < 600; ++i) {
      const auto token = static_cast<int32_t>(rng() % static_cast<unsigned>(alphabet));
      text.push_back(token);
      sam.push(token);
      ASSERT_EQ(sam.match_length(), brute_match_length(text))
          << "alphabet " << alphabet << " i " << i;
      if (sam.match_length() == 0) continue;
      // The continuation starts right after an earlier occurrence of the match.
      const size_t from = sam.continuation();
      const auto len = static_cast<size_t>(sam.match_length());
      ASSERT_GE(from, len);
      ASSERT_LT(from, text.size());
      for (size_t k = 0; k < len; ++k) {
        ASSERT_EQ(text[from - len + k], text[text.size() - len + k]);
      }
    }
  }
}

TEST(SuffixAutomaton, DraftsWhatFollowedTheMatch) {
  SuffixAutomaton sam;
  for (int32_t t : {1, 2, 3, 4, 5, 9, 1, 2, 3}) sam.push(t);
  EXPECT_EQ(sam.match_length(), 3);
  std::vector<int32_t> out;
  sam.continuation_tokens(4, out);
  EXPECT_EQ(out, (std::vector<int32_t>{4, 5, 9, 1}));
  sam.continuation_tokens(0, out);
  EXPECT_TRUE(out.empty());
  // Of several earlier occurrences, the latest one is continued.
  SuffixAutomaton repeats;
  for (int32_t t : {1, 2, 9, 1, 2, 8, 1, 2}) repeats.push(t);
  EXPECT_EQ(repeats.match_length(), 2);
  repeats.continuation_tokens(8, out);
  EXPECT_EQ(out, (std::vector<int32_t>{8, 1, 2}));
  SuffixAutomaton none;
  for (int32_t t : {1, 2, 3}) none.push(t);
  none.continuation_tokens(4, out);
  EXPECT_TRUE(out.empty());
}

// The longest suffix of `text` that occurs inside one of `docs`, by brute force: its length.
int brute_corpus_match(const std::vector<std::vector<int32_t>>& docs,
                       const std::vector<int32_t>& text) {
  int best = 0;
  for (const auto& doc : docs) {
    for (size_t end = 0; end < doc.size(); ++end) {  // an occurrence ending at doc[end]
      size_t len = 0;
      while (len <= end && len < text.size() && doc[end - len] == text[text.size() - 1 - len]) {
        ++len;
      }
      best = std::max(best, static_cast<int>(len));
    }
  }
  return best;
}

TEST(SuffixAutomaton, CorpusCursorFollowsTheLongestSuffixInOneDocument) {
  std::mt19937 rng(20261205);
  for (int alphabet : {2, 3, 6}) {
    std::vector<std::vector<int32_t>> docs(3);
    for (auto& d : docs) {
      d.resize(40 + rng() % 60);
      for (auto& t : d) t = static_cast<int32_t>(rng() % static_cast<unsigned>(alphabet));
    }
    const SuffixAutomaton corpus = SuffixAutomaton::of_documents(docs);
    SamCursor cursor;
    std::vector<int32_t> text, cont;
    for (int i = 0; i < 300; ++i) {
      text.push_back(static_cast<int32_t>(rng() % static_cast<unsigned>(alphabet)));
      corpus.follow(cursor, text.back());
      ASSERT_EQ(cursor.length, brute_corpus_match(docs, text)) << "alphabet " << alphabet;
      // The continuation is what follows an occurrence of the match, within its document.
      corpus.continuation_tokens(cursor, 8, cont);
      if (cursor.length == 0) {
        ASSERT_TRUE(cont.empty());
        continue;
      }
      const auto len = static_cast<size_t>(cursor.length);
      bool found = false;
      for (const auto& d : docs) {
        for (size_t end = len - 1; end < d.size() && !found; ++end) {
          const bool match = std::equal(text.end() - static_cast<std::ptrdiff_t>(len), text.end(),
                                        d.begin() + static_cast<std::ptrdiff_t>(end + 1 - len));
          const size_t n = std::min<size_t>(8, d.size() - end - 1);
          found = match && cont.size() == n &&
                  std::equal(cont.begin(), cont.end(),
                             d.begin() + static_cast<std::ptrdiff_t>(end + 1));
        }
      }
      ASSERT_TRUE(found) << "alphabet " << alphabet << " i " << i;
    }
  }
}

TEST(SuffixAutomaton, SamDrafterTakesTheLongerOfTextAndCorpusMatches) {
  const std::vector<std::vector<int32_t>> docs = {{1, 2, 3, 4, 5, 6, 7}, {8, 9}};
  const SuffixAutomaton corpus = SuffixAutomaton::of_documents(docs);
  SamDrafter drafter(&corpus, /*min_corpus_match=*/1);
  SequenceState seq;
  Draft out;
  // The text's own match is 1 token (4 after 4); the corpus matches "2 3 4".
  seq.tokens = {4, 0, 2, 3, 4};
  drafter.draft(seq, 8, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{5, 6, 7}));  // stops at the document's end
  // Now the text's match (0 2 3 4 5 after ... 0 2 3 4 5 -> 9) is longer than the corpus's.
  seq.tokens.insert(seq.tokens.end(), {5, 9, 0, 2, 3, 4, 5});
  drafter.draft(seq, 8, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{9, 0, 2, 3, 4, 5}));
  // A corpus match shorter than the minimum does not draft.
  SamDrafter strict(&corpus, /*min_corpus_match=*/4);
  seq.tokens = {4, 0, 2, 3, 4};
  strict.draft(seq, 8, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{0, 2, 3, 4}));
  // Without a corpus only the text counts.
  SamDrafter alone;
  seq.tokens = {4, 0, 2, 3, 4};
  alone.draft(seq, 8, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{0, 2, 3, 4}));
}

sampling::Candidates distribution(const std::vector<float>& probs) {
  sampling::Candidates c;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0) c.items.push_back({static_cast<int32_t>(i), std::log(probs[i]), probs[i]});
  }
  c.sort_descending();
  return c;
}

int32_t draw(const std::vector<float>& probs, std::mt19937& rng) {
  std::discrete_distribution<int32_t> d(probs.begin(), probs.end());
  return d(rng);
}

// Pearson's chi-square of counts against expected probabilities.
double chi_square(const std::vector<int64_t>& counts, const std::vector<float>& expected,
                  int64_t n) {
  double x2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = expected[i] * static_cast<double>(n);
    if (e > 0) x2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return x2;
}

// 5 categories, df = 4: P(chi2 > 30) ~ 5e-6.
constexpr double kChi2Df4 = 30.0;

// The target p and draft q of the rejection-sampling tests (sum min(p, q) = 0.5), and a sampling
// chain to draw the acceptance coins with.
const std::vector<float> kP = {0.5f, 0.2f, 0.15f, 0.1f, 0.05f};
const std::vector<float> kQ = {0.1f, 0.4f, 0.3f, 0.0f, 0.2f};

sampling::SamplerChain coin_chain(uint64_t seed) {
  sampling::SamplingParams params;
  params.temperature = 1.0f;
  params.seed = seed;
  return sampling::SamplerChain::from_params(params);
}

TEST(RejectionSampling, FirstTokenFollowsTheTargetDistribution) {
  const std::vector<float>& p = kP;
  const sampling::Candidates pc = distribution(kP), qc = distribution(kQ);
  sampling::SamplerChain chain = coin_chain(7);
  std::mt19937 draft_rng(11);
  constexpr int64_t kN = 200000;
  std::vector<int64_t> with_q(5), one_hot(5), draft_only(5);
  VerifyScratch residual;
  int64_t accepted_q = 0;
  for (int64_t i = 0; i < kN; ++i) {
    const int32_t x = draw(kQ, draft_rng);
    bool accepted = false;
    ++with_q[static_cast<size_t>(verify_draft_token(chain, pc, x, &qc, accepted, residual))];
    accepted_q += accepted ? 1 : 0;
    ++draft_only[static_cast<size_t>(x)];  // negative control: keeping every draft gives q
    // A deterministic drafter always guessing token 1 (q one-hot).
    ++one_hot[static_cast<size_t>(verify_draft_token(chain, pc, 1, nullptr, accepted, residual))];
  }
  EXPECT_LT(chi_square(with_q, p, kN), kChi2Df4);
  EXPECT_LT(chi_square(one_hot, p, kN), kChi2Df4);
  EXPECT_GT(chi_square(draft_only, p, kN), 100 * kChi2Df4) << "the test cannot tell q from p";
  // Acceptance rate is sum_x min(p, q) = 0.1 + 0.2 + 0.15 + 0 + 0.05 = 0.5.
  EXPECT_NEAR(static_cast<double>(accepted_q) / kN, 0.5, 0.01);
}

TEST(RejectionSampling, SeveralCandidatesFromQFollowTheTargetDistribution) {
  // SpecInfer's multi-step rule: k candidates drawn independently from q, the residual updated
  // after each rejection. The output must follow p for every k; the control, which tries each
  // candidate against the original p (no update), keeps too many of q's likely tokens.
  const std::vector<float>& p = kP;
  const std::vector<float>& q = kQ;
  const sampling::Candidates pc = distribution(p), qc = distribution(q);
  sampling::SamplerChain chain = coin_chain(9);
  std::mt19937 draft_rng(13);
  constexpr int64_t kN = 200000;
  VerifyScratch scratch;
  for (int k : {1, 2, 3}) {
    std::vector<int64_t> counts(5), control(5);
    int64_t kept_any = 0;
    std::vector<int32_t> candidates(static_cast<size_t>(k));
    for (int64_t i = 0; i < kN; ++i) {
      for (auto& c : candidates) c = draw(q, draft_rng);
      int kept = -1;
      const int32_t token = verify_draft_candidates(chain, pc, candidates, qc, kept, scratch);
      ++counts[static_cast<size_t>(token)];
      if (kept >= 0) {
        ++kept_any;
        EXPECT_EQ(token, candidates[static_cast<size_t>(kept)]);
      }
      int32_t naive = -1;
      for (int32_t c : candidates) {
        bool accepted = false;
        naive = verify_draft_token(chain, pc, c, &qc, accepted, scratch);
        if (accepted) break;
      }
      ++control[static_cast<size_t>(naive)];
    }
    EXPECT_LT(chi_square(counts, p, kN), kChi2Df4) << "k " << k;
    if (k > 1) {
      EXPECT_GT(chi_square(control, p, kN), 10 * kChi2Df4) << "k " << k << ": no control";
    }
    // P(candidate i kept | the earlier ones rejected) = sum min(p_i, q): 0.5 for p_0 = p, then
    // p_1 = (0.8, 0, 0, 0.2, 0) and p_2 = (0.7, 0, 0, 0.2, 0) / 0.9 give 0.1 each: kept with
    // probability 0.5, 0.55, 0.595 for k = 1, 2, 3.
    const double expected_kept[] = {0.5, 0.55, 0.595};
    EXPECT_NEAR(static_cast<double>(kept_any) / kN, expected_kept[k - 1], 0.01) << "k " << k;
  }
}

// A drafter that proposes a fixed script and records what it was told.
class ScriptedDrafter final : public Drafter {
 public:
  explicit ScriptedDrafter(std::vector<int32_t> script) : script_(std::move(script)) {}
  std::string_view name() const override { return "scripted"; }
  void draft(const SequenceState&, int max_tokens, Draft& out) override {
    for (int i = 0; i < max_tokens && i < static_cast<int>(script_.size()); ++i) {
      out.tokens.push_back(script_[static_cast<size_t>(i)]);
    }
  }
  void verified(const SequenceState&, const Verification& v) override { last = v; }
  Verification last;

 private:
  std::vector<int32_t> script_;
};

TEST(SpeculativeStrategy, GreedyKeepsTheAgreeingPrefixRollsBackAndCounts) {
  constexpr int kVocab = 8;
  SequenceState s;
  s.tokens = {1, 2};
  s.n_prompt = 2;
  s.n_vocab = kVocab;
  s.cache = kv::KvCache(kv::KvShape{1, 1, 4, 64});
  sampling::SamplingParams p;
  p.temperature = 0.0f;
  s.sampler = sampling::SamplerChain::from_params(p);
  auto owned = std::make_unique<ScriptedDrafter>(std::vector<int32_t>{3, 4, 5});
  ScriptedDrafter* drafter = owned.get();
  SpeculativeStrategy strategy(std::move(owned), 8);
  // After the prompt: one row, no draft.
  s.cache.set_n_tokens(2);
  std::vector<float> row(kVocab, 0.0f);
  row[2] = 1.0f;  // next token 2 -> tokens {1, 2, 2}
  EXPECT_EQ(strategy.accept(s, row), 1);
  ASSERT_EQ(s.tokens.size(), 3u);
  std::vector<model::BatchEntry> entries;
  strategy.propose(s, 16, entries);
  ASSERT_EQ(entries.size(), 4u);  // pending + 3 drafts at consecutive positions
  EXPECT_EQ(entries[0].token, 2);
  EXPECT_EQ(entries[0].position, 2);
  EXPECT_EQ(entries[3].token, 5);
  EXPECT_EQ(entries[3].position, 5);
  s.cache.set_n_tokens(6);  // the forward appended the 4 entries
  // Target: after pending -> 3 (draft 0 agrees), after 3 -> 4 (agrees), after 4 -> 7 (not 5).
  std::vector<float> rows(4 * kVocab, 0.0f);
  rows[0 * kVocab + 3] = 1.0f;
  rows[1 * kVocab + 4] = 1.0f;
  rows[2 * kVocab + 7] = 1.0f;
  rows[3 * kVocab + 6] = 1.0f;  // saw the rejected 5: must not be used
  EXPECT_EQ(strategy.accept(s, rows), 3);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{1, 2, 2, 3, 4, 7}));
  EXPECT_EQ(s.cache.n_tokens(), 5);  // 1 2 2 3 4 kept; 7 is pending
  const SpeculationStats& st = *strategy.speculation();
  EXPECT_EQ(st.steps, 1);
  EXPECT_EQ(st.drafted, 3);
  EXPECT_EQ(st.accepted, 2);
  EXPECT_EQ(st.drafted_at, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(st.accepted_at, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(drafter->last.drafted, 3);
  EXPECT_EQ(drafter->last.accepted, 2);
  // The room left limits the draft: max_entries 2 -> pending + 1 draft.
  entries.clear();
  strategy.propose(s, 2, entries);
  EXPECT_EQ(entries.size(), 2u);
  // A caller that timed the forward (the scheduler) gives its seconds: they are the
  // verification's, not the time since propose (which in a batch counts other sequences' work).
  s.cache.set_n_tokens(7);
  s.forward_seconds = 0.25;
  const double before = st.verify_seconds;
  std::vector<float> two(2 * kVocab, 0.0f);
  two[0 * kVocab + 3] = 1.0f;
  two[1 * kVocab + 1] = 1.0f;
  strategy.accept(s, two);
  EXPECT_EQ(drafter->last.verify_seconds, 0.25);
  EXPECT_NEAR(st.verify_seconds - before, 0.25, 1e-12);
}

TEST(NgramDrafter, DraftsForSampledSequencesToo) {
  SequenceState s;
  s.tokens = {1, 2, 3, 1, 2};
  s.n_prompt = 5;
  s.n_vocab = 8;
  sampling::SamplingParams p;  // sampling
  s.sampler = sampling::SamplerChain::from_params(p);
  NgramDrafter d;
  Draft out;
  d.draft(s, 4, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{3, 1, 2}));
  EXPECT_TRUE(out.q.empty());  // deterministic guesses
}

TEST(NgramCache, ProposesWhatFollowedTheNgramInEarlierRequests) {
  NgramCache cache;
  std::vector<int32_t> first = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  // Positions whose 8-token continuation is known: j < 13 - 8 = 5.
  EXPECT_EQ(cache.add(first, 0), 5u);
  std::vector<int32_t> out;
  // Another request ending in 6 7 (a 2-gram of the first) has no match of its own.
  SequenceState s;
  s.tokens = {1, 2, 6, 7};
  s.n_prompt = 4;
  s.n_vocab = 32;
  NgramDrafter with_cache(3, &cache), without(3, nullptr);
  Draft d;
  without.draft(s, 4, d);
  EXPECT_TRUE(d.tokens.empty());
  with_cache.draft(s, 4, d);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{8, 9, 10, 11}));
  // The 3-gram wins over the 2-gram: 7 8 9 continues with 10.., while 8 9 alone is the same here.
  EXPECT_TRUE(cache.lookup(std::vector<int32_t>{7, 8, 9}, 8, out));
  EXPECT_EQ(out, (std::vector<int32_t>{10, 11, 12, 13, 14, 15, 16, 17}));
  EXPECT_FALSE(cache.lookup(std::vector<int32_t>{99, 98}, 8, out));
  // Indexing resumes where it stopped.
  first.push_back(18);
  EXPECT_EQ(cache.add(first, 5), 6u);
  EXPECT_TRUE(cache.lookup(std::vector<int32_t>{9, 10}, 8, out));
  EXPECT_EQ(out.back(), 18);
}

}  // namespace
}  // namespace pareto::decoding
