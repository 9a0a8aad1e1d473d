// Bad input: files the loader must reject with messages naming the file and the problem, and
// forward() calls that must fail cleanly.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tiny_model.h"

namespace pareto::model::test {
namespace {

using ::testing::HasSubstr;

// Writes the model and returns Model::load's error message (empty if it loaded).
std::string load_error(const std::string& test_name, const TinySpec& s, const TinyWeights& w,
                       std::string* path_out, bool drop_key = false, const std::string& key = {}) {
  const auto path = (pareto::test::temp_dir(test_name) / "bad.gguf").string();
  *path_out = path;
  formats::GgufWriter gw;
  set_metadata(gw, s);
  if (drop_key) {
    // Rebuild the metadata without `key`.
    gw = formats::GgufWriter();
    const std::string a = s.arch + ".";
    using formats::Value;
    const std::vector<std::pair<std::string, Value>> all{
        {"general.architecture", Value::str(s.arch)},
        {a + "context_length", Value::u32(static_cast<uint32_t>(s.context_length))},
        {a + "embedding_length", Value::u32(static_cast<uint32_t>(s.dim))},
        {a + "block_count", Value::u32(static_cast<uint32_t>(s.n_layers))},
        {a + "feed_forward_length", Value::u32(static_cast<uint32_t>(s.ffn_dim))},
        {a + "attention.head_count", Value::u32(static_cast<uint32_t>(s.n_heads))},
        {a + "attention.head_count_kv", Value::u32(static_cast<uint32_t>(s.n_kv_heads))},
        {a + "attention.layer_norm_rms_epsilon", Value::f32(s.rms_eps)},
    };
    for (const auto& [k, v] : all) {
      if (k != key) gw.set(k, v);
    }
  }
  for (const auto& [name, values] : w.values) {
    const auto& shape = w.shapes.at(name);
    const TensorType type = w.types.at(name);
    std::vector<uint8_t> bytes;
    if (type == TensorType::Q2_K) {  // no encoder: zero blocks
      bytes.assign(
          static_cast<size_t>(row_bytes(type, shape[0]) * (shape.size() > 1 ? shape[1] : 1)), 0);
    } else {
      bytes = encode(type, values, shape[0]);
    }
    EXPECT_TRUE(gw.add_tensor(name, type, shape, std::move(bytes)).has_value()) << name;
  }
  EXPECT_TRUE(gw.write(path).has_value());
  auto file = formats::read_gguf(path);
  EXPECT_TRUE(file.has_value()) << (file ? "" : file.error().message);
  if (!file) return "unreadable";
  auto m = Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  return m ? std::string() : m.error().message;
}

TEST(ModelLoad, MissingMetadataKeyIsNamed) {
  TinySpec s;
  std::string path;
  const std::string msg =
      load_error("load_missing_key", s, make_weights(s), &path, true, "llama.block_count");
  EXPECT_THAT(msg, HasSubstr("llama.block_count"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(ModelLoad, HeadCountKvDefaultsToHeadCount) {
  TinySpec s;
  s.n_kv_heads = s.n_heads;  // the weights then have the shapes of plain multi-head attention
  std::string path;
  EXPECT_EQ(load_error("load_default_kv", s, make_weights(s), &path, true,
                       "llama.attention.head_count_kv"),
            "");
}

TEST(ModelLoad, WrongTensorShapeNamesExpectedAndFound) {
  TinySpec s;
  TinyWeights w = make_weights(s);
  // attn_k of layer 1 with one row too many.
  w.shapes["blk.1.attn_k.weight"] = {s.dim, 33};
  w.values["blk.1.attn_k.weight"].resize(static_cast<size_t>(s.dim) * 33, 0.5f);
  std::string path;
  const std::string msg = load_error("load_bad_shape", s, w, &path);
  EXPECT_THAT(msg, HasSubstr("blk.1.attn_k.weight"));
  EXPECT_THAT(msg, HasSubstr("expected [64, 32]"));
  EXPECT_THAT(msg, HasSubstr("found [64, 33]"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(ModelLoad, MissingTensorIsNamed) {
  TinySpec s;
  TinyWeights w = make_weights(s);
  w.values.erase("blk.0.ffn_up.weight");
  std::string path;
  const std::string msg = load_error("load_missing_tensor", s, w, &path);
  EXPECT_THAT(msg, HasSubstr("missing tensor 'blk.0.ffn_up.weight'"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(ModelLoad, UnknownArchitectureListsSupported) {
  TinySpec s;
  s.arch = "gpt5";
  std::string path;
  const std::string msg = load_error("load_unknown_arch", s, make_weights(s), &path);
  EXPECT_THAT(msg, HasSubstr("unknown architecture 'gpt5'"));
  EXPECT_THAT(msg, HasSubstr("llama"));
  EXPECT_THAT(msg, HasSubstr("qwen2"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(ModelLoad, UnsupportedTensorTypeIsNamed) {
  TinySpec s;
  s.dim = 256;  // Q2_K rows hold 256 elements
  TinyWeights w = make_weights(s);
  w.types["blk.0.ffn_gate.weight"] = TensorType::Q2_K;
  std::string path;
  const std::string msg = load_error("load_q2_k", s, w, &path);
  EXPECT_THAT(msg, HasSubstr("blk.0.ffn_gate.weight"));
  EXPECT_THAT(msg, HasSubstr("Q2_K not supported"));
  EXPECT_THAT(msg, HasSubstr("Q4_K"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(ModelLoad, NormMustBeF32) {
  TinySpec s;
  TinyWeights w = make_weights(s);
  w.types["blk.0.attn_norm.weight"] = TensorType::F16;
  std::string path;
  const std::string msg = load_error("load_norm_f16", s, w, &path);
  EXPECT_THAT(msg, HasSubstr("blk.0.attn_norm.weight"));
  EXPECT_THAT(msg, HasSubstr("F16"));
}

class ForwardErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto path = (pareto::test::temp_dir("forward_errors") / "m.gguf").string();
    write_model(path, spec_, make_weights(spec_));
    model_ = load_model(path);
    ASSERT_NE(model_, nullptr);
  }
  TinySpec spec_;
  std::unique_ptr<Model> model_;
  ThreadPool pool_{1};
};

TEST_F(ForwardErrors, EmptyBatch) {
  kv::KvCache cache = model_->make_cache(4);
  std::vector<float> logits;
  auto st = model_->forward({}, cache, logits, pool_);
  ASSERT_FALSE(st.has_value());
  EXPECT_THAT(st.error().message, HasSubstr("empty batch"));
}

TEST_F(ForwardErrors, TokenOutOfRange) {
  kv::KvCache cache = model_->make_cache(4);
  std::vector<float> logits;
  const std::vector<int32_t> tokens{1, spec_.n_vocab};
  auto st = model_->forward(tokens, cache, logits, pool_);
  ASSERT_FALSE(st.has_value());
  EXPECT_THAT(st.error().message, HasSubstr("token id 50"));
  EXPECT_EQ(cache.n_tokens(), 0);  // nothing was appended
  const std::vector<int32_t> negative{-1};
  EXPECT_FALSE(model_->forward(negative, cache, logits, pool_).has_value());
}

TEST_F(ForwardErrors, PromptLongerThanContext) {
  kv::KvCache cache = model_->make_cache(4);
  std::vector<float> logits;
  const std::vector<int32_t> three{1, 2, 3};
  ASSERT_TRUE(model_->forward(three, cache, logits, pool_).has_value());
  const std::vector<int32_t> two{4, 5};
  auto st = model_->forward(two, cache, logits, pool_);
  ASSERT_FALSE(st.has_value());
  EXPECT_THAT(st.error().message, HasSubstr("2 new > the sequence's context of 4"));
  EXPECT_EQ(st.error().code, ErrorCode::kContextOverflow);
  EXPECT_EQ(cache.n_tokens(), 3);
  const std::vector<int32_t> one{4};
  EXPECT_TRUE(model_->forward(one, cache, logits, pool_).has_value());  // exactly full is fine
}

}  // namespace
}  // namespace pareto::model::test
