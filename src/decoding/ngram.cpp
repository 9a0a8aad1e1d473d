#include "decoding/ngram.h"

#include <algorithm>

#include "base/check.h"

namespace pareto::decoding {

void find_ngram_draft(std::span<const int32_t> tokens, int max_ngram, int max_tokens,
                      std::vector<int32_t>& draft) {
  draft.clear();
  const auto n = static_cast<int64_t>(tokens.size());
  if (max_tokens <= 0) return;
  for (int64_t g = std::min<int64_t>(max_ngram, n - 1); g >= 1; --g) {
    const auto suffix = tokens.subspan(static_cast<size_t>(n - g));
    // Latest occurrence first: the nearest context is the likeliest to repeat.
    for (int64_t j = n - g - 1; j >= 0; --j) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + j)) continue;
      const int64_t from = j + g;
      const int64_t to = std::min(n, from + max_tokens);
      draft.assign(tokens.begin() + from, tokens.begin() + to);
      return;
    }
  }
}

void NgramStrategy::propose(const SequenceState& seq, int max_entries,
                            std::vector<model::BatchEntry>& entries) {
  PARETO_CHECK(max_entries >= 1 && !seq.tokens.empty());
  PARETO_CHECK_MSG(seq.cache.n_tokens() + 1 == static_cast<int>(seq.tokens.size()),
                   "NgramStrategy::propose: the cache must hold every token but the pending one");
  draft_.clear();
  if (seq.sampler.greedy()) {
    find_ngram_draft(seq.tokens, max_ngram_, std::min(max_draft_, max_entries - 1), draft_);
  }
  const auto pending = static_cast<int32_t>(seq.tokens.size()) - 1;
  entries.push_back({seq.tokens.back(), pending, 0, true});
  for (size_t i = 0; i < draft_.size(); ++i) {
    entries.push_back({draft_[i], pending + 1 + static_cast<int32_t>(i), 0, true});
  }
}

int NgramStrategy::accept(SequenceState& seq, std::span<const float> logits) {
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  PARETO_CHECK(n_vocab > 0 && logits.size() % n_vocab == 0);
  const size_t rows = logits.size() / n_vocab;
  // The first call after the prompt has the last prompt token's row only (no draft proposed).
  PARETO_CHECK(rows == draft_.size() + 1 || (rows == 1 && draft_.empty()));
  int appended = 0;
  for (size_t i = 0; i < rows; ++i) {
    const std::span<const float> row = logits.subspan(i * n_vocab, n_vocab);
    const int32_t token = seq.sampler.sample(row, seq.tokens);
    seq.tokens.push_back(token);
    ++appended;
    if (i >= draft_.size() || token != draft_[i]) break;  // later rows saw a rejected token
  }
  // The cache holds the pending token and every draft token; keep those before the new pending.
  if (static_cast<size_t>(appended) < rows) {
    seq.cache.truncate(static_cast<int>(seq.tokens.size()) - 1);
  }
  draft_.clear();
  return appended;
}

}  // namespace pareto::decoding
