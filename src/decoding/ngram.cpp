#include "decoding/ngram.h"

#include <algorithm>

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

void NgramDrafter::draft(const SequenceState& seq, int max_tokens, Draft& out) {
  find_ngram_draft(seq.tokens, max_ngram_, max_tokens, out.tokens);
}

}  // namespace pareto::decoding
