// Autoregressive decoding: one entry per step, the pending token; its logits give the next token,
// sampled with the sequence's chain and RNG.
#pragma once

#include "decoding/strategy.h"

namespace pareto::decoding {

class Autoregressive final : public DecodingStrategy {
 public:
  std::string_view name() const override { return "autoregressive"; }
  void propose(const SequenceState& seq, int max_entries,
               std::vector<model::BatchEntry>& entries) override;
  int accept(SequenceState& seq, std::span<const float> logits) override;
};

}  // namespace pareto::decoding
