// Prompt-lookup (n-gram) drafting: the draft is what followed the latest earlier occurrence of the
// sequence's last n tokens (n = max_ngram down to 1), in the prompt or in the text generated so
// far (Saxena 2023, "Prompt Lookup Decoding"; the n-gram drafter of llama.cpp's lookup example).
// When the sequence itself has no match, an n-gram cache shared by every request of the engine
// (as OmniDraft's, NeurIPS 2025) proposes what followed the same 3- or 2-gram in earlier
// requests. Deterministic guesses (q one-hot). Searching the sequence is O(length x n) per step;
// the suffix automaton ("sam", suffix_automaton.h) finds the longest match in O(1) amortized.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "decoding/drafter.h"

namespace pareto::decoding {

// Continuations of 2- and 3-grams across requests: for each n-gram, what followed its latest
// occurrence (up to kContinuation tokens). Used by the step thread only (drafting and accepting
// run there). Bounded: past kMaxEntries n-grams it starts afresh.
class NgramCache {
 public:
  static constexpr int kContinuation = 8;
  static constexpr size_t kMaxEntries = size_t{1} << 20;
  // Indexes the n-grams of `tokens` whose full continuation is known and that end at positions
  // >= `from` (the caller passes what it indexed last time; returns the new mark).
  size_t add(std::span<const int32_t> tokens, size_t from);
  // The continuation of the last 3-gram (else 2-gram) of `tokens`, at most max_tokens.
  bool lookup(std::span<const int32_t> tokens, int max_tokens, std::vector<int32_t>& out) const;
  size_t size() const { return next_.size(); }

 private:
  std::unordered_map<uint64_t, std::vector<int32_t>> next_;
};

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(int max_ngram = 3, NgramCache* cache = nullptr)
      : max_ngram_(max_ngram), cache_(cache) {}
  std::string_view name() const override { return "ngram"; }
  void draft(const SequenceState& seq, int max_tokens, Draft& out) override;
  void verified(const SequenceState& seq, const Verification& v) override;
  bool free_to_ask() const override { return true; }

 private:
  int max_ngram_;
  NgramCache* cache_;
  size_t indexed_ = 0;  // positions of this sequence already added to the cache
};

// Up to `max_tokens` tokens that followed the latest earlier occurrence of the last n tokens of
// `tokens`, for the longest n <= max_ngram that has one; empty when none does.
void find_ngram_draft(std::span<const int32_t> tokens, int max_ngram, int max_tokens,
                      std::vector<int32_t>& draft);

}  // namespace pareto::decoding
