// CLaSp's layer selection (layer_selection.h) on residual streams built by hand: it skips the
// layers whose updates matter least to the direction of the stream, never the first or the last,
// exactly as many as asked (clamped to the inner layers), and judges by cosine, not by size.
#include "decoding/layer_selection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace pareto::decoding {
namespace layer_selection_test {
namespace {

// A stream of n_layers + 1 states of `dim` from a start and each layer's update (updates[l]).
std::vector<float> stream(const std::vector<float>& start,
                          const std::vector<std::vector<float>>& updates) {
  std::vector<float> all(start);
  std::vector<float> x(start);
  for (const auto& u : updates) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += u[i];
    all.insert(all.end(), x.begin(), x.end());
  }
  return all;
}

std::vector<float> random_vector(std::mt19937& rng, int dim, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(dim));
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(LayerSelection, SkipsTheLayersThatChangeTheStreamLeast) {
  std::mt19937 rng(3);
  constexpr int kDim = 16;
  // Layers 2 and 4 barely move the stream; the others, including the first and the last (which
  // may not be skipped), move it a lot.
  const std::vector<float> scales = {1.0f, 1.0f, 0.01f, 1.0f, 0.01f, 1.0f};
  std::vector<std::vector<float>> updates;
  for (float s : scales) updates.push_back(random_vector(rng, kDim, s));
  const std::vector<float> h = stream(random_vector(rng, kDim, 1.0f), updates);
  EXPECT_EQ(choose_skipped_layers(h, 6, kDim, 2), (std::vector<uint8_t>{0, 0, 1, 0, 1, 0}));
  EXPECT_EQ(choose_skipped_layers(h, 6, kDim, 0), (std::vector<uint8_t>(6, 0)));
  // More than the inner layers: all inner ones, never the first or the last.
  EXPECT_EQ(choose_skipped_layers(h, 6, kDim, 9), (std::vector<uint8_t>{0, 1, 1, 1, 1, 0}));
  // Exactly n_skip, whatever the stream.
  for (int n_skip = 0; n_skip <= 4; ++n_skip) {
    const std::vector<uint8_t> mask = choose_skipped_layers(h, 6, kDim, n_skip);
    EXPECT_EQ(std::count(mask.begin(), mask.end(), uint8_t{1}), n_skip);
    EXPECT_EQ(mask.front(), 0);
    EXPECT_EQ(mask.back(), 0);
  }
}

// An update along the stream (a multiple of it) changes its length, not its direction: skipping
// it costs no cosine, however large; a small update across the stream does cost some. The
// selection skips the large one.
TEST(LayerSelection, JudgesByDirectionNotSize) {
  constexpr int kDim = 4;
  const std::vector<float> start = {1.0f, 0.0f, 0.0f, 0.0f};
  const std::vector<std::vector<float>> updates = {
      {0.0f, 1.0f, 0.0f, 0.0f},   // first: always runs; the stream is (1, 1, 0, 0)
      {0.0f, 0.0f, 0.2f, 0.0f},   // small, across it: (1, 1, 0.2, 0)
      {3.0f, 3.0f, 0.6f, 0.0f},   // three times the stream: (4, 4, 0.8, 0)
      {0.0f, 0.0f, 0.0f, 0.0f}};  // last: always runs
  const std::vector<float> h = stream(start, updates);
  EXPECT_EQ(choose_skipped_layers(h, 4, kDim, 1), (std::vector<uint8_t>{0, 0, 1, 0}));
}

TEST(LayerSelection, ShallowModelsHaveNothingToSkip) {
  const std::vector<float> h(3 * 2, 1.0f);
  EXPECT_EQ(choose_skipped_layers(h, 2, 2, 1), (std::vector<uint8_t>{0, 0}));
}

}  // namespace
}  // namespace layer_selection_test
}  // namespace pareto::decoding
