// Log-probabilities of generated tokens, as OpenAI's `logprobs` report them: the log softmax of
// the model's raw logits (before penalties, temperature and filters, as vLLM reports by default),
// for the chosen token and the most likely alternatives.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace pareto::sampling {

struct TokenLogprobs {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>>
      top;  // (token, logprob), most likely first (ties: lower id)
};

// logits: [n_vocab]; n_top: alternatives to list (0: none). O(n_vocab log n_top).
TokenLogprobs token_logprobs(std::span<const float> logits, int32_t token, int n_top);

}  // namespace pareto::sampling
