// ForwardOptions::residuals (the residual stream of chosen rows at every layer boundary, for
// CLaSp's layer selection): a token's stream enters the first layer as its embedding, whatever
// its position; a skipped layer leaves it as it was; a row's stream is the same whichever other
// rows of the batch want logits (the last layer compacts the rows that do); a row that is out of
// range or wants no logits is an error.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::model {
namespace residual_capture_test {
namespace {

std::unique_ptr<Model> load_stories() {
  auto file =
      formats::open_model_file(pareto::test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(file.has_value()) << (file ? "" : file.error().message);
  if (!file) return nullptr;
  auto m = Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().message);
  return m ? std::move(*m) : nullptr;
}

// One causal sequence of `tokens` in a fresh F32 cache, rows with logits as `wants`; returns the
// capture of `rows` (empty on error, with the error's message in `error`).
std::vector<float> capture(const Model& m, const std::vector<int32_t>& tokens,
                           const std::vector<bool>& wants, const std::vector<int32_t>& rows,
                           std::vector<uint8_t> skip = {}, std::string* error = nullptr) {
  std::vector<BatchEntry> batch;
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.push_back({tokens[i], static_cast<int32_t>(i), 0, wants[i]});
  }
  kv::KvCache cache = m.make_cache(64);
  kv::KvCache* caches[] = {&cache};
  ForwardWorkspace ws;
  std::vector<float> logits;
  ThreadPool pool(2);
  ResidualCapture rc;
  rc.rows = rows;
  ForwardOptions o;
  o.batch_invariant = true;  // a row's numbers do not depend on the batch's other rows
  o.skip_layers = skip;
  o.residuals = &rc;
  const auto done = m.forward(batch, caches, logits, ws, pool, o);
  if (!done) {
    if (error != nullptr) *error = done.error().message;
    return {};
  }
  return rc.values;
}

TEST(ResidualCapture, StreamsAtEveryLayerBoundary) {
  const std::unique_ptr<Model> m = load_stories();
  ASSERT_NE(m, nullptr);
  const int layers = m->config().n_layers;
  const auto dim = static_cast<size_t>(m->config().dim);
  const size_t per_row = static_cast<size_t>(layers + 1) * dim;
  const std::vector<int32_t> tokens = {1, 403, 407, 403};
  const auto boundary = [&](const std::vector<float>& v, size_t i, int l) {
    return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(i * per_row + l * dim),
                              v.begin() + static_cast<std::ptrdiff_t>(i * per_row + (l + 1) * dim));
  };

  const std::vector<float> all = capture(*m, tokens, {true, true, true, true}, {1, 3});
  ASSERT_EQ(all.size(), 2 * per_row);
  // Token 403 at positions 1 and 3: the same embedding in, different streams out.
  EXPECT_EQ(boundary(all, 0, 0), boundary(all, 1, 0));
  EXPECT_NE(boundary(all, 0, layers), boundary(all, 1, layers));
  for (int l = 0; l < layers; ++l) {
    EXPECT_NE(boundary(all, 1, l), boundary(all, 1, l + 1)) << "layer " << l << " did nothing";
  }

  // Only rows 1 and 3 want logits: the last layer compacts them; their streams do not change.
  const std::vector<float> some = capture(*m, tokens, {false, true, false, true}, {1, 3});
  EXPECT_EQ(some, all);
  const std::vector<float> last = capture(*m, tokens, {false, false, false, true}, {3});
  EXPECT_EQ(last,
            std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(per_row), all.end()));

  // Layer 1 skipped: its input is its output.
  std::vector<uint8_t> skip(static_cast<size_t>(layers), 0);
  skip[1] = 1;
  const std::vector<float> skipped = capture(*m, tokens, {true, true, true, true}, {3}, skip);
  ASSERT_EQ(skipped.size(), per_row);
  EXPECT_EQ(boundary(skipped, 0, 1), boundary(skipped, 0, 2));
  EXPECT_EQ(boundary(skipped, 0, 1), boundary(all, 1, 1)) << "layer 0 ran as in the full model";

  std::string error;
  EXPECT_TRUE(capture(*m, tokens, {true, false, true, true}, {1}, {}, &error).empty());
  EXPECT_NE(error.find("residual capture of row 1"), std::string::npos) << error;
  EXPECT_TRUE(capture(*m, tokens, {true, true, true, true}, {4}, {}, &error).empty());
  EXPECT_NE(error.find("row 4 (the batch has 4 rows"), std::string::npos) << error;
}

}  // namespace
}  // namespace residual_capture_test
}  // namespace pareto::model
