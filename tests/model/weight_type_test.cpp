// ModelLoadOptions::weight_type: a float file converted at load computes exactly what the file
// llama-quantize writes from it (shared stories260K-Q8_0 / -Q4_0.gguf, quantized by llama.cpp
// de3ff81 from stories260K.gguf: Q8_0 / Q4_0 matrices, ffn_down (rows of 172) in F16, and for
// Q4_0 the output in Q8_0), bit for bit, on the fast kernels and on the scalar ones. Bad requests
// are refused naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto::model {
namespace weight_type_test {
namespace {

Result<std::unique_ptr<Model>> load(const std::string& name, ModelLoadOptions o = {}) {
  PARETO_TRY(auto file,
             formats::open_model_file(pareto::test::shared_path("models/stories260K/" + name)));
  return Model::load(std::make_shared<const formats::ModelFile>(std::move(file)), o);
}

// Logits of every position of one prompt through a fresh cache.
std::vector<float> logits_of(const Model& m, kernels::KernelPath path) {
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 294, 285, 270, 349, 306, 289, 13};
  kv::KvCache cache = m.make_cache(64);
  std::vector<float> logits;
  ThreadPool pool(2);
  ForwardOptions o;
  o.all_logits = true;
  o.kernel_path = path;
  EXPECT_TRUE(m.forward(tokens, cache, logits, pool, o).has_value());
  return logits;
}

void expect_converted_equals_file(TensorType type, const std::string& quantized_file) {
  for (const bool scalar : {false, true}) {
    SCOPED_TRACE(scalar ? "scalar kernels" : "native kernels");
    ModelLoadOptions o;
    if (scalar) o.kernel_path = kernels::KernelPath::kScalar;
    auto from_file = load(quantized_file, o);
    ASSERT_TRUE(from_file.has_value()) << from_file.error().message;
    o.weight_type = type;
    auto converted = load("stories260K.gguf", o);
    ASSERT_TRUE(converted.has_value()) << converted.error().message;
    const kernels::KernelPath path = (*from_file)->kernel_path();
    const std::vector<float> want = logits_of(**from_file, path);
    const std::vector<float> got = logits_of(**converted, path);
    ASSERT_EQ(got.size(), want.size());
    size_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += got[i] != want[i];
    EXPECT_EQ(differ, 0u) << "of " << want.size() << " logits";
  }
}

TEST(WeightType, Q8_0ConversionComputesWhatLlamaQuantizesFileDoes) {
  expect_converted_equals_file(TensorType::Q8_0, "stories260K-Q8_0.gguf");
}

TEST(WeightType, Q4_0ConversionKeepsTheOutputInQ8_0AsLlamaQuantizeDoes) {
  expect_converted_equals_file(TensorType::Q4_0, "stories260K-Q4_0.gguf");
}

TEST(WeightType, F16ConversionRoundsEachWeightOnce) {
  auto f32 = load("stories260K.gguf");
  ModelLoadOptions o;
  o.weight_type = TensorType::F16;
  auto f16 = load("stories260K.gguf", o);
  ASSERT_TRUE(f32.has_value() && f16.has_value());
  const kernels::KernelPath path = (*f32)->kernel_path();
  const std::vector<float> a = logits_of(**f32, path);
  const std::vector<float> b = logits_of(**f16, path);
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
    differ += a[i] != b[i];
  }
  EXPECT_GT(differ, 0u);      // converted: F16 weights round
  EXPECT_LT(max_diff, 0.05);  // once each (half precision, 2^-11 relative)
}

TEST(WeightType, BadRequestsAreNamed) {
  EXPECT_EQ(parse_weight_type("Q8_0").value(), TensorType::Q8_0);
  EXPECT_EQ(parse_weight_type("bf16").value(), TensorType::BF16);
  for (const char* bad : {"q5_1", "q4_k", "f32", "", "q8"}) {
    const auto t = parse_weight_type(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_NE(t.error().message.find("valid: f16, bf16, q8_0, q4_0"), std::string::npos)
        << t.error().message;
  }
  ModelLoadOptions o;
  o.weight_type = TensorType::Q4_0;
  const auto m = load("stories260K-Q8_0.gguf", o);
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message.find("stories260K-Q8_0.gguf: tensor 'blk.0.attn_q.weight' is Q8_0"),
            std::string::npos)
      << m.error().message;
  EXPECT_NE(m.error().message.find("converts F32, F16 and BF16 matrices only"), std::string::npos)
      << m.error().message;
}

}  // namespace
}  // namespace weight_type_test
}  // namespace pareto::model
