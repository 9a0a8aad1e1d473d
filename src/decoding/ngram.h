// Prompt-lookup (n-gram) drafting: the draft is what followed the latest earlier occurrence of the
// sequence's last n tokens (n = max_ngram down to 1), in the prompt or in the text generated so
// far (Saxena 2023, "Prompt Lookup Decoding"; the n-gram drafter of llama.cpp's lookup example).
// Deterministic guesses (q one-hot). Searching is O(length x n) per step; the suffix automaton
// ("sam", suffix_automaton.h) finds the longest match in O(1) amortized.
#pragma once

#include <cstdint>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(int max_ngram = 3) : max_ngram_(max_ngram) {}
  std::string_view name() const override { return "ngram"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;

 private:
  int max_ngram_;
};

// Up to `max_tokens` tokens that followed the latest earlier occurrence of the last n tokens of
// `tokens`, for the longest n <= max_ngram that has one; empty when none does.
void find_ngram_draft(std::span<const int32_t> tokens, int max_ngram, int max_tokens,
                      std::vector<int32_t>& draft);

}  // namespace pareto::decoding
