// The draft model's helpers that need no model: its confidence estimate.
#include "decoding/draft_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace pareto::decoding {
namespace draft_model_test {

// softmax(logits)[argmax] in double with libm's exp: the reference.
double exact_argmax_probability(const std::vector<float>& logits) {
  float max = logits[0];
  for (float l : logits) max = std::max(max, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  return 1.0 / sum;
}

TEST(ArgmaxProbability, MatchesTheExactSoftmaxOverAVocabulary) {
  std::mt19937 rng(7);
  // Flat, peaked and very spread logits; vocabulary sizes with and without a tail of 16.
  for (const float spread : {0.1f, 3.0f, 40.0f}) {
    for (const int n : {512, 4096, 32003}) {
      std::normal_distribution<float> normal(0.0f, spread);
      std::vector<float> logits(static_cast<size_t>(n));
      for (float& l : logits) l = normal(rng);
      const double exact = exact_argmax_probability(logits);
      EXPECT_NEAR(argmax_probability(logits), exact, 1e-5 * exact)
          << "spread " << spread << " n " << n;
    }
  }
}

TEST(ArgmaxProbability, OneLogitOrAClearWinner) {
  EXPECT_DOUBLE_EQ(argmax_probability(std::vector<float>{2.5f}), 1.0);
  // Others 100 below the maximum: exp(-100) is far below float's resolution of 1.
  EXPECT_NEAR(argmax_probability(std::vector<float>{-50.0f, 50.0f, -50.0f}), 1.0, 1e-12);
  // Two equal maxima: one half each.
  EXPECT_NEAR(argmax_probability(std::vector<float>{1.0f, 1.0f, -200.0f}), 0.5, 1e-6);
  // -inf logits (masked tokens) count as nothing.
  EXPECT_NEAR(argmax_probability(std::vector<float>{0.0f, -INFINITY, std::log(3.0f)}), 0.75, 1e-6);
}

}  // namespace draft_model_test
}  // namespace pareto::decoding
