// Suffix-automaton drafting (Hu et al., "SAM Decoding", ACL 2025): an automaton of every
// substring of prompt + output, extended by one token at a time (Blumer et al.'s online
// construction, O(1) amortized), tracks the longest suffix of the text that occurred earlier; the
// draft is what followed that earlier occurrence. Unlike the n-gram search (ngram.h) the match
// has no length cap and costs no scan of the text. The automaton holds accepted tokens only
// (rejected drafts never enter the text), so nothing is rolled back.
//
// SAM Decoding's second source: a static automaton over a corpus (documents of tokens), built once
// and shared read-only by every request; each sequence follows it with a cursor of its own
// (SamCursor). The drafter proposes from whichever of the two matches the longer suffix.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

// A sequence's place in a static automaton: the state of the longest suffix of its text that
// occurs in the automaton's text, and that suffix's length.
struct SamCursor {
  int32_t state = 0;
  int32_t length = 0;
};

class SuffixAutomaton {
 public:
  // Separates documents in a corpus: never a token, so no match crosses two documents, and a
  // continuation stops at the end of its document.
  static constexpr int32_t kDocumentEnd = -1;

  SuffixAutomaton();
  // A static automaton of documents (each a token sequence), kDocumentEnd between them.
  static SuffixAutomaton of_documents(std::span<const std::vector<int32_t>> documents);
  // Appends one token to the text: first follows the match (the longest suffix of the text that
  // also ends earlier), then extends the automaton.
  void push(int32_t token);
  size_t size() const { return text_.size(); }
  // Length of the current match, and the text position right after the end of a recent earlier
  // occurrence of it (the continuation starts there: in code and stories the latest repeat
  // predicts better than the first); match_length() == 0: none.
  int match_length() const { return match_len_; }
  size_t continuation() const;
  // Up to `max_tokens` tokens of the continuation.
  void continuation_tokens(int max_tokens, std::vector<int32_t>& out) const;

  // Static use: moves `cursor` past one more token of a sequence's text (the longest suffix of that
  // text that occurs in this automaton's text), without changing the automaton.
  void follow(SamCursor& cursor, int32_t token) const;
  // Up to `max_tokens` tokens after the first occurrence of `cursor`'s match, up to the end of
  // its document.
  void continuation_tokens(const SamCursor& cursor, int max_tokens,
                           std::vector<int32_t>& out) const;
  size_t n_states() const { return states_.size(); }

 private:
  struct State {
    int32_t len = 0;
    int32_t link = -1;
    int32_t first_end = -1;  // end position (inclusive) of the first occurrence
    // End of a recent occurrence: where the state was created or last matched (lazily updated:
    // the states on its suffix-link path keep older, still valid, ends).
    int32_t last_end = -1;
  };
  int32_t next(int32_t state, int32_t token) const;
  std::vector<State> states_;
  std::unordered_map<uint64_t, int32_t> edges_;   // (state << 32 | token) -> state
  std::vector<std::vector<int32_t>> out_tokens_;  // per state, the tokens of its edges
  std::vector<int32_t> text_;
  int32_t last_ = 0;        // the state of the whole text
  int32_t match_ = 0;       // the state of the current match
  int32_t match_len_ = 0;   // its length (may be below states_[match_].len)
  int32_t match_end_ = -1;  // the end of the earlier occurrence the match continues
};

class SamDrafter final : public Drafter {
 public:
  // A corpus match shorter than this never drafts: on the pycode workload with the Python 3.11
  // standard library as corpus, matches of 4 tokens cut the speed-up from 1.25x to 1.11x (wrong
  // drafts), of 8-12 kept it (docs/techniques/suffix-automaton-speculation.md).
  static constexpr int kMinCorpusMatch = 8;
  // `corpus`: a static automaton (SuffixAutomaton::of_documents), or null for the text alone.
  explicit SamDrafter(const SuffixAutomaton* corpus = nullptr,
                      int min_corpus_match = kMinCorpusMatch)
      : corpus_(corpus), min_corpus_match_(min_corpus_match) {}
  std::string_view name() const override { return "sam"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  bool free_to_ask() const override { return true; }
  // Length of the match the last draft continued (0: none): how much context backs the guess.
  int match_length() const { return match_length_; }

 private:
  SuffixAutomaton automaton_;
  int match_length_ = 0;
  const SuffixAutomaton* corpus_;
  int min_corpus_match_;
  SamCursor corpus_cursor_;
  std::vector<int32_t> corpus_draft_;
};

}  // namespace pareto::decoding
