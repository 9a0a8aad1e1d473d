#include "decoding/ngram.h"

#include <algorithm>

namespace pareto::decoding {
namespace {

// n in the top bits, then the tokens (FNV-1a over their 32-bit values).
uint64_t ngram_key(std::span<const int32_t> gram) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : gram) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ULL;
  }
  return (h >> 2) | (static_cast<uint64_t>(gram.size() == 3) << 63);
}

}  // namespace

size_t NgramCache::add(std::span<const int32_t> tokens, size_t from) {
  // An n-gram ending at j needs kContinuation tokens after it.
  const size_t n = tokens.size();
  if (n < static_cast<size_t>(kContinuation) + 2) return from;
  const size_t last = n - static_cast<size_t>(kContinuation);  // j < last
  if (next_.size() > kMaxEntries) next_.clear();
  for (size_t j = std::max<size_t>(from, 1); j < last; ++j) {
    const auto cont = tokens.subspan(j + 1, kContinuation);
    next_[ngram_key(tokens.subspan(j - 1, 2))].assign(cont.begin(), cont.end());
    if (j >= 2) next_[ngram_key(tokens.subspan(j - 2, 3))].assign(cont.begin(), cont.end());
  }
  return std::max(from, last);
}

bool NgramCache::lookup(std::span<const int32_t> tokens, int max_tokens,
                        std::vector<int32_t>& out) const {
  out.clear();
  for (size_t g = 3; g >= 2; --g) {
    if (tokens.size() < g) continue;
    const auto it = next_.find(ngram_key(tokens.subspan(tokens.size() - g)));
    if (it == next_.end()) continue;
    const size_t k = std::min(it->second.size(), static_cast<size_t>(std::max(max_tokens, 0)));
    out.assign(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(k));
    return !out.empty();
  }
  return false;
}

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
  if (out.tokens.empty() && cache_ != nullptr) cache_->lookup(seq.tokens, max_tokens, out.tokens);
}

void NgramDrafter::verified(const SequenceState& seq, const Verification& v) {
  (void)v;
  if (cache_ != nullptr) indexed_ = cache_->add(seq.tokens, indexed_);
}

}  // namespace pareto::decoding
