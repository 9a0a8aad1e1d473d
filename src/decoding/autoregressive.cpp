#include "decoding/autoregressive.h"

#include "base/check.h"

namespace pareto::decoding {

void Autoregressive::propose(const SequenceState& seq, int max_entries,
                             std::vector<model::BatchEntry>& entries) {
  PARETO_CHECK(max_entries >= 1 && !seq.tokens.empty());
  PARETO_CHECK_MSG(seq.cache.n_tokens() + 1 == static_cast<int>(seq.tokens.size()),
                   "Autoregressive::propose: the cache must hold every token but the pending one");
  model::BatchEntry e;
  e.token = seq.tokens.back();
  e.position = static_cast<int32_t>(seq.tokens.size()) - 1;
  e.logits = true;
  entries.push_back(e);
}

int Autoregressive::accept(SequenceState& seq, std::span<const float> logits) {
  const auto n_vocab = static_cast<size_t>(seq.n_vocab);
  PARETO_CHECK(n_vocab > 0 && logits.size() >= n_vocab);
  // The last row is the next token's distribution.
  const std::span<const float> row = logits.subspan(logits.size() - n_vocab, n_vocab);
  seq.tokens.push_back(seq.sampler.sample(row, seq.tokens));
  return 1;
}

}  // namespace pareto::decoding
