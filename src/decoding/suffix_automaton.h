// Suffix-automaton drafting (Hu et al., "SAM Decoding", ACL 2025): an automaton of every
// substring of prompt + output, extended by one token at a time (Blumer et al.'s online
// construction, O(1) amortized), tracks the longest suffix of the text that occurred earlier; the
// draft is what followed that earlier occurrence. Unlike the n-gram search (ngram.h) the match
// has no length cap and costs no scan of the text. The automaton holds accepted tokens only
// (rejected drafts never enter the text), so nothing is rolled back.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

class SuffixAutomaton {
 public:
  SuffixAutomaton();
  // Appends one token to the text: first follows the match (the longest suffix of the text that
  // also ends earlier), then extends the automaton.
  void push(int32_t token);
  size_t size() const { return text_.size(); }
  // Length of the current match, and the text position right after its first occurrence's end
  // (the continuation starts there); match_length() == 0: none.
  int match_length() const { return match_len_; }
  size_t continuation() const;
  // Up to `max_tokens` tokens of the continuation.
  void continuation_tokens(int max_tokens, std::vector<int32_t>& out) const;

 private:
  struct State {
    int32_t len = 0;
    int32_t link = -1;
    int32_t first_end = -1;  // end position (inclusive) of the first occurrence
  };
  int32_t next(int32_t state, int32_t token) const;
  std::vector<State> states_;
  std::unordered_map<uint64_t, int32_t> edges_;   // (state << 32 | token) -> state
  std::vector<std::vector<int32_t>> out_tokens_;  // per state, the tokens of its edges
  std::vector<int32_t> text_;
  int32_t last_ = 0;       // the state of the whole text
  int32_t match_ = 0;      // the state of the current match
  int32_t match_len_ = 0;  // its length (may be below states_[match_].len)
};

class SamDrafter final : public Drafter {
 public:
  std::string_view name() const override { return "sam"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;

 private:
  SuffixAutomaton automaton_;
};

}  // namespace pareto::decoding
