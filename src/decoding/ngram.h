// Prompt-lookup (n-gram) drafting: the draft is what followed the latest earlier occurrence of the
// sequence's last n tokens (n = max_ngram down to 1), in the prompt or in the text generated so
// far (Saxena 2023, "Prompt Lookup Decoding"; the n-gram drafter of llama.cpp's lookup example).
// The target verifies the pending token and the draft in one forward; the longest prefix of the
// draft that greedy decoding would have produced is accepted, plus the target's next token.
// Greedy chains only for now: with a sampling chain it proposes no draft (plain decoding), so the
// output distribution is the target's either way. Searching is O(length x n) per step.
#pragma once

#include <cstdint>
#include <vector>

#include "decoding/strategy.h"

namespace pareto::decoding {

class NgramStrategy final : public DecodingStrategy {
 public:
  explicit NgramStrategy(int max_draft = 8, int max_ngram = 3)
      : max_draft_(max_draft), max_ngram_(max_ngram) {}
  std::string_view name() const override { return "ngram"; }
  void propose(const SequenceState& seq, int max_entries,
               std::vector<model::BatchEntry>& entries) override;
  int accept(SequenceState& seq, std::span<const float> logits) override;

 private:
  int max_draft_;
  int max_ngram_;
  std::vector<int32_t> draft_;  // the last proposal's draft tokens
};

// Up to `max_tokens` tokens that followed the latest earlier occurrence of the last n tokens of
// `tokens`, for the longest n <= max_ngram that has one; empty when none does.
void find_ngram_draft(std::span<const int32_t> tokens, int max_ngram, int max_tokens,
                      std::vector<int32_t>& draft);

}  // namespace pareto::decoding
