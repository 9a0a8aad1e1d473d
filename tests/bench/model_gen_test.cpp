// gen-model output: loads through formats::read_gguf, Model::load and the engine with the shape
// and types asked for; weights are deterministic and distributed as requested.
#include "bench/model_gen.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "pareto/pareto.h"
#include "test_util.h"

namespace pareto {
// Names a tensor type in test listings (and so in ctest) instead of dumping its bytes.
inline void PrintTo(TensorType t, std::ostream* os) {
  *os << type_name(t);
}
}  // namespace pareto

namespace pareto::bench {
namespace {

std::string generate(const std::string& shape_name, TensorType type, const std::string& file,
                     uint64_t seed = 1, int threads = 2, int layers = 0) {
  auto shape = find_model_shape(shape_name);
  EXPECT_TRUE(shape) << shape.error().message;
  GenerateOptions options;
  options.type = type;
  options.seed = seed;
  options.n_layers = layers;
  ThreadPool pool(threads);
  const std::string path = (test::temp_dir("bench_gen_" + file) / (file + ".gguf")).string();
  auto status = generate_model(*shape, options, path, pool);
  EXPECT_TRUE(status) << status.error().message;
  return path;
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class GenModelTypes : public ::testing::TestWithParam<TensorType> {};

// K-quant rows need 256 elements: their models use the tiny-k shape.
std::string tiny_shape_for(TensorType type) {
  return traits(type).block_size == 256 ? "tiny-k" : "tiny";
}

TEST_P(GenModelTypes, LoadsWithRequestedShapeAndTypes) {
  const TensorType type = GetParam();
  const std::string shape_name = tiny_shape_for(type);
  const std::string path = generate(shape_name, type, "tiny_" + std::string(type_name(type)));
  auto file = formats::read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  const ModelShape shape = *find_model_shape(shape_name);
  GenerateOptions options;
  options.type = type;
  EXPECT_EQ(file->data_bytes(), generated_data_bytes(shape, options));
  for (const auto& t : file->tensors()) {
    EXPECT_EQ(t.type, t.shape.size() == 2 ? type : TensorType::F32) << t.name;
  }
  auto model = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  ASSERT_TRUE(model) << model.error().message;
  const model::ModelConfig& c = (*model)->config();
  EXPECT_EQ(c.arch, shape.arch);
  EXPECT_EQ(c.dim, shape.dim);
  EXPECT_EQ(c.n_layers, shape.n_layers);
  EXPECT_EQ(c.n_heads, shape.n_heads);
  EXPECT_EQ(c.n_kv_heads, shape.n_kv_heads);
  EXPECT_EQ(c.ffn_dim, shape.ffn_dim);
  EXPECT_EQ(c.n_vocab, shape.n_vocab);
  EXPECT_EQ(c.tied_output, shape.tied_output);
  EXPECT_FLOAT_EQ(c.rope_base, shape.rope_base);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GenModelTypes,
                         ::testing::Values(TensorType::F32, TensorType::F16, TensorType::BF16,
                                           TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                                           TensorType::Q5_K, TensorType::Q6_K),
                         [](const auto& param_info) {
                           return std::string(type_name(param_info.param));
                         });

TEST(GenModel, Qwen2LayoutHasBiasesTiedOutputAndLayerOverride) {
  const std::string path = generate("tiny-qwen2", TensorType::Q8_0, "tiny_qwen2", 1, 2, 1);
  auto file = formats::read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_NE(file->find_tensor("blk.0.attn_q.bias"), nullptr);
  EXPECT_EQ(file->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(file->find_tensor("blk.1.attn_q.weight"), nullptr);  // --layers 1
  auto model = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  ASSERT_TRUE(model) << model.error().message;
  EXPECT_EQ((*model)->config().n_layers, 1);
  EXPECT_TRUE((*model)->config().qkv_bias);
  EXPECT_TRUE((*model)->config().tied_output);
}

TEST(GenModel, RealShapesHaveTheirPublishedDimensions) {
  // Llama-3.2-1B's config.json: hidden 2048, 16 layers, 32 heads, 8 KV heads, FFN 8192.
  const ModelShape llama = *find_model_shape("llama-1b");
  EXPECT_EQ(llama.dim, 2048);
  EXPECT_EQ(llama.n_layers, 16);
  EXPECT_EQ(llama.n_kv_heads, 8);
  EXPECT_EQ(llama.n_vocab, 128256);
  EXPECT_TRUE(llama.tied_output);
  // A Llama-3.2-1B Q4_0 GGUF holds about 1.24 B parameters: check the generator agrees in size
  // (Q4_0: 18 bytes per 32 weights) without writing the file.
  GenerateOptions q4;
  q4.type = TensorType::Q4_0;
  const double params = static_cast<double>(generated_data_bytes(llama, q4)) * 32.0 / 18.0;
  EXPECT_NEAR(params / 1e9, 1.24, 0.01);
  EXPECT_TRUE(find_model_shape("qwen2.5-0.5b")->qkv_bias);
  EXPECT_FALSE(find_model_shape("llama-7b")->tied_output);
}

TEST(GenModel, SameSeedSameBytesWhateverTheThreadCount) {
  const auto a = file_bytes(generate("tiny", TensorType::Q4_0, "seed_a", 7, 1));
  const auto b = file_bytes(generate("tiny", TensorType::Q4_0, "seed_b", 7, 2));
  const auto c = file_bytes(generate("tiny", TensorType::Q4_0, "seed_c", 8, 2));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(GenModel, WeightsHaveRequestedSpreadAndNormsAreOne) {
  auto file = formats::read_gguf(generate("tiny", TensorType::F32, "stats"));
  ASSERT_TRUE(file) << file.error().message;
  const formats::TensorInfo* w = file->find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(w, nullptr);
  const auto* x = reinterpret_cast<const float*>(w->data);
  const int64_t n = w->n_elements();
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i], sq += double{x[i]} * x[i];
  const double mean = sum / static_cast<double>(n);
  const double sd = std::sqrt(sq / static_cast<double>(n) - mean * mean);
  // n = 32768 samples: the standard error of the mean is 0.02 / 181 ~ 1.1e-4.
  EXPECT_NEAR(mean, 0.0, 6e-4);
  EXPECT_NEAR(sd, GenerateOptions{}.weight_std, 0.02 * 0.03);
  const formats::TensorInfo* norm = file->find_tensor("blk.1.ffn_norm.weight");
  ASSERT_NE(norm, nullptr);
  const auto* g = reinterpret_cast<const float*>(norm->data);
  for (int64_t i = 0; i < norm->n_elements(); ++i) ASSERT_EQ(g[i], 1.0f);
}

TEST(GenModel, VocabularyTokenizesAndGenerates) {
  const std::string path = generate("tiny", TensorType::Q8_0, "engine");
  auto engine = Engine::load(path, LoadOptions{.n_threads = 2});
  ASSERT_TRUE(engine) << engine.error().message;
  const std::string text = "Once upon a time, 42 cats!";
  const std::vector<int32_t> tokens = (*engine)->tokenize(text, /*add_bos=*/true);
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], 1);  // <s>
  EXPECT_EQ((*engine)->detokenize(std::span(tokens).subspan(1)), text);
  GenerateParams params;
  params.temperature = 0;
  params.max_tokens = 4;
  auto out = (*engine)->generate(text, params);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->prompt_tokens, tokens);
}

TEST(GenModel, RejectsUnknownShapeAndUnsupportedType) {
  auto shape = find_model_shape("llama-3b");
  ASSERT_FALSE(shape);
  EXPECT_NE(shape.error().message.find("llama-1b"), std::string::npos) << shape.error().message;
  GenerateOptions options;
  options.type = TensorType::Q2_K;
  ThreadPool pool(1);
  const auto dir = test::temp_dir("bench_gen_bad");
  auto status = generate_model(*find_model_shape("tiny"), options, (dir / "x.gguf").string(), pool);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("Q2_K"), std::string::npos) << status.error().message;
  // K-quants need rows of 256: the tiny shape's 128 is refused.
  options.type = TensorType::Q4_K;
  status = generate_model(*find_model_shape("tiny"), options, (dir / "y.gguf").string(), pool);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("multiples of 256"), std::string::npos)
      << status.error().message;
}

TEST(GenModel, Q4_K_MMixFollowsLlamaCppRecipe) {
  const ModelShape shape = *find_model_shape("tiny-k");
  GenerateOptions options;
  options.mix = TypeMix::kQ4_K_M;
  options.n_layers = 8;
  ThreadPool pool(2);
  const std::string path = (test::temp_dir("bench_gen_q4km") / "q4km.gguf").string();
  auto status = generate_model(shape, options, path, pool);
  ASSERT_TRUE(status) << status.error().message;
  auto file = formats::read_gguf(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->data_bytes(), generated_data_bytes(shape, options));
  // use_more_bits for 8 layers: layer 0 (first eighth), 7 (last eighth), and 3, 6 (every third
  // counted from layer 1).
  const std::set<int> more_bits = {0, 3, 6, 7};
  int n_q6 = 0;
  for (const auto& t : file->tensors()) {
    if (t.shape.size() != 2) continue;
    TensorType expected = TensorType::Q4_K;
    if (t.name == "output.weight") expected = TensorType::Q6_K;
    for (int layer : more_bits) {
      const std::string blk = "blk." + std::to_string(layer) + ".";
      if (t.name == blk + "attn_v.weight" || t.name == blk + "ffn_down.weight") {
        expected = TensorType::Q6_K;
      }
    }
    EXPECT_EQ(t.type, expected) << t.name;
    n_q6 += t.type == TensorType::Q6_K;
  }
  EXPECT_EQ(n_q6, 1 + 2 * 4);
  auto model = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  ASSERT_TRUE(model) << model.error().message;
}

}  // namespace
}  // namespace pareto::bench
