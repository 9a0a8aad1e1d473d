// GGUF keys and tensors that change the math are honored (the config says what llama.cpp derives
// from them) or refused with an error naming the file, the key and the value found.
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tiny_model.h"

namespace pareto::model::test {
namespace {

using formats::Value;
using ::testing::HasSubstr;

using Edit = std::function<void(formats::GgufWriter&)>;

// Writes a tiny model of `arch` with `edit` applied and loads it.
Result<std::unique_ptr<Model>> load_edited(const std::string& name, const std::string& arch,
                                           const Edit& edit, std::string* path_out = nullptr) {
  TinySpec s;
  s.arch = arch;
  const TinyWeights w = make_weights(s);
  const auto path = (pareto::test::temp_dir("rope_keys_" + name) / "model.gguf").string();
  if (path_out != nullptr) *path_out = path;
  formats::GgufWriter gw;
  set_metadata(gw, s);
  for (const auto& [tensor, values] : w.values) {
    const auto& shape = w.shapes.at(tensor);
    const TensorType type = w.types.at(tensor);
    EXPECT_TRUE(gw.add_tensor(tensor, type, shape, encode(type, values, shape[0])).has_value());
  }
  edit(gw);
  EXPECT_TRUE(gw.write(path).has_value());
  auto file = formats::read_gguf(path);
  if (!file) return tl::unexpected(file.error());
  return Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

Edit set_keys(std::vector<std::pair<std::string, Value>> keys) {
  return [keys = std::move(keys)](formats::GgufWriter& gw) {
    for (const auto& [k, v] : keys) gw.set(k, v);
  };
}

TEST(RopeKeys, NoKeysIsPlainRope) {
  auto m = load_edited("plain", "llama", [](formats::GgufWriter&) {});
  ASSERT_TRUE(m.has_value()) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.rope_scaling, RopeScaling::kLinear);  // llama.cpp's default type, factor 0: none
  EXPECT_EQ(c.rope_freq_scale, 1.0f);
  EXPECT_EQ(c.rope_ext_factor, 0.0f);
  EXPECT_EQ(c.rope_attn_factor, 1.0f);
  EXPECT_EQ(c.rope_n_ctx_orig, c.context_length);
  EXPECT_TRUE(c.rope_freq_factors.empty());
}

TEST(RopeKeys, LinearFactorAndLegacyKey) {
  auto m = load_edited("linear", "llama",
                       set_keys({{"llama.rope.scaling.type", Value::str("linear")},
                                 {"llama.rope.scaling.factor", Value::f32(4.0f)},
                                 {"llama.rope.scaling.attn_factor", Value::f32(0.8f)}}));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ((*m)->config().rope_freq_scale, 0.25f);
  EXPECT_EQ((*m)->config().rope_ext_factor, 0.0f);
  EXPECT_EQ((*m)->config().rope_attn_factor, 0.8f);
  // rope.scale_linear, read when rope.scaling.factor is absent; the type defaults to linear.
  auto legacy =
      load_edited("legacy", "llama", set_keys({{"llama.rope.scale_linear", Value::f32(2)}}));
  ASSERT_TRUE(legacy.has_value()) << legacy.error().message;
  EXPECT_EQ((*legacy)->config().rope_freq_scale, 0.5f);
  // Type none: llama.cpp never scales, whatever the factor says.
  auto none = load_edited("none", "llama",
                          set_keys({{"llama.rope.scaling.type", Value::str("none")},
                                    {"llama.rope.scaling.factor", Value::f32(4.0f)}}));
  ASSERT_TRUE(none.has_value()) << none.error().message;
  EXPECT_EQ((*none)->config().rope_freq_scale, 1.0f);
}

TEST(RopeKeys, YarnDerivesLlamaCppsContextParameters) {
  auto m = load_edited("yarn", "qwen2",
                       set_keys({{"qwen2.rope.scaling.type", Value::str("yarn")},
                                 {"qwen2.rope.scaling.factor", Value::f32(4.0f)},
                                 {"qwen2.rope.scaling.original_context_length", Value::u32(32)},
                                 {"qwen2.rope.scaling.attn_factor", Value::f32(1.5f)},
                                 {"qwen2.rope.scaling.yarn_beta_fast", Value::f32(32.0f)},
                                 {"qwen2.rope.scaling.yarn_beta_slow", Value::f32(1.0f)},
                                 {"qwen2.rope.scaling.yarn_ext_factor", Value::f32(1.0f)},
                                 {"qwen2.rope.scaling.finetuned", Value::boolean(true)}}));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.rope_scaling, RopeScaling::kYarn);
  EXPECT_EQ(c.rope_freq_scale, 0.25f);
  EXPECT_EQ(c.rope_ext_factor, 1.0f);
  EXPECT_EQ(c.rope_n_ctx_orig, 32);
  EXPECT_EQ(c.rope_beta_fast, 32.0f);
  EXPECT_EQ(c.rope_beta_slow, 1.0f);
  // get_mscale(4) / (1 + 0.1 ln 4) * attn_factor: about 1.5, rounded as llama.cpp rounds it.
  const float mscale = 0.1f * std::log(4.0f) + 1.0f;
  float expected = mscale;
  expected *= 1.0f / (1.0f + 0.1f * std::log(4.0f));
  expected *= 1.5f;
  EXPECT_EQ(c.rope_attn_factor, expected);
  EXPECT_NEAR(c.rope_attn_factor, 1.5, 1e-6);
}

TEST(RopeKeys, RopeFreqsTensorIsRead) {
  std::vector<float> ff(8);  // head dim 16: 8 pairs
  for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + 0.5f * static_cast<float>(i);
  auto m = load_edited("freqs", "llama", [&](formats::GgufWriter& gw) {
    EXPECT_TRUE(
        gw.add_tensor("rope_freqs.weight", TensorType::F32, {8}, f32_bytes(ff)).has_value());
  });
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ((*m)->config().rope_freq_factors, ff);
}

// Each refused file: its edit, and what the error must name.
struct Refusal {
  const char* name;
  const char* arch;
  Edit edit;
  std::vector<std::string> named;  // substrings of the message (besides the path)
};

void PrintTo(const Refusal& r, std::ostream* os) {
  *os << r.name;
}

std::vector<Refusal> refusals() {
  const auto key = [](const char* arch, const char* k, Value v, std::vector<std::string> named) {
    return std::make_tuple(arch, std::string(arch) + "." + k, std::move(v), std::move(named));
  };
  std::vector<Refusal> out;
  const auto add = [&](const char* name, auto spec) {
    auto [arch, k, v, named] = spec;
    named.push_back(k);
    out.push_back({name, arch, set_keys({{k, v}}), named});
  };
  add("longrope", key("llama", "rope.scaling.type", Value::str("longrope"),
                      {"'longrope'", "none, linear, yarn"}));
  add("unknown_type", key("qwen2", "rope.scaling.type", Value::str("ntk"), {"'ntk'"}));
  add("negative_factor", key("llama", "rope.scaling.factor", Value::f32(-2.0f), {"-2"}));
  add("yarn_beta_fast", key("llama", "rope.scaling.yarn_beta_fast", Value::f32(16.0f),
                            {"16", "does not read this key", "32"}));
  add("yarn_beta_slow", key("llama", "rope.scaling.yarn_beta_slow", Value::f32(2.0f), {"2"}));
  add("yarn_ext_factor", key("llama", "rope.scaling.yarn_ext_factor", Value::f32(0.5f), {"0.5"}));
  add("yarn_attn_factor", key("llama", "rope.scaling.yarn_attn_factor", Value::f32(0.7f), {"0.7"}));
  add("yarn_log_multiplier",
      key("qwen2", "rope.scaling.yarn_log_multiplier", Value::f32(0.1f), {"0.1"}));
  add("rope_alpha", key("llama", "rope.scaling.alpha", Value::f32(1000.0f), {"1000"}));
  add("mrope", key("qwen2", "rope.dimension_sections", Value::i32_array({8, 4, 4, 0}), {"M-RoPE"}));
  add("freq_base_swa", key("llama", "rope.freq_base_swa", Value::f32(10000.0f), {"present"}));
  add("sliding_window",
      key("qwen2", "attention.sliding_window", Value::u32(4096), {"4096", "sliding-window"}));
  add("sliding_window_pattern",
      key("llama", "attention.sliding_window_pattern", Value::u32(4), {"sliding-window"}));
  add("final_softcap",
      key("llama", "final_logit_softcapping", Value::f32(30.0f), {"30", "soft-capping"}));
  add("attn_softcap",
      key("llama", "attn_logit_softcapping", Value::f32(50.0f), {"50", "soft-capping"}));
  add("attention_scale", key("llama", "attention.scale", Value::f32(0.125f), {"0.125"}));
  add("logit_scale", key("llama", "logit_scale", Value::f32(0.5f), {"0.5"}));
  add("embedding_scale", key("llama", "embedding_scale", Value::f32(12.0f), {"12"}));
  add("residual_scale", key("llama", "residual_scale", Value::f32(0.22f), {"0.22"}));
  add("clamp_kqv", key("llama", "attention.clamp_kqv", Value::f32(8.0f), {"8"}));
  add("alibi", key("llama", "attention.max_alibi_bias", Value::f32(8.0f), {"ALiBi"}));
  add("experts", key("llama", "expert_count", Value::u32(8), {"8", "mixture of experts"}));
  add("nextn", key("qwen2", "nextn_predict_layers", Value::u32(1), {"1"}));
  add("non_causal", key("llama", "attention.causal", Value::boolean(false), {"false"}));
  add("temperature", key("llama", "attention.temperature_length", Value::u32(8192), {"8192"}));

  const auto tensor = [](const char* name, TensorType type, std::vector<int64_t> shape) {
    return [=](formats::GgufWriter& gw) {
      int64_t n = 1;
      for (const int64_t d : shape) n *= d;
      std::vector<float> ones(static_cast<size_t>(n), 1.0f);
      std::vector<uint8_t> bytes = f32_bytes(ones);
      if (type == TensorType::F16) bytes.resize(bytes.size() / 2, 0);
      EXPECT_TRUE(gw.add_tensor(name, type, shape, std::move(bytes)).has_value());
    };
  };
  out.push_back({"rope_freqs_shape",
                 "llama",
                 tensor("rope_freqs.weight", TensorType::F32, {16}),
                 {"rope_freqs.weight", "[8]", "[16]"}});
  out.push_back({"rope_freqs_type",
                 "llama",
                 tensor("rope_freqs.weight", TensorType::F16, {8}),
                 {"rope_freqs.weight", "F16", "F32"}});
  out.push_back({"rope_freqs_qwen2",
                 "qwen2",
                 tensor("rope_freqs.weight", TensorType::F32, {8}),
                 {"rope_freqs.weight", "qwen2"}});
  out.push_back(
      {"rope_freqs_zero",
       "llama",
       [](formats::GgufWriter& gw) {
         std::vector<float> f(8, 1.0f);
         f[3] = 0.0f;
         EXPECT_TRUE(
             gw.add_tensor("rope_freqs.weight", TensorType::F32, {8}, f32_bytes(f)).has_value());
       },
       {"rope_freqs.weight", "element 3"}});
  out.push_back({"attn_output_bias",
                 "llama",
                 tensor("blk.1.attn_output.bias", TensorType::F32, {64}),
                 {"blk.1.attn_output.bias"}});
  out.push_back({"llama_q_bias",
                 "llama",
                 tensor("blk.0.attn_q.bias", TensorType::F32, {64}),
                 {"blk.0.attn_q.bias"}});
  out.push_back({"qwen2_output_bias",
                 "qwen2",
                 tensor("output.bias", TensorType::F32, {50}),
                 {"output.bias"}});
  return out;
}

class RefusedFile : public ::testing::TestWithParam<Refusal> {};

TEST_P(RefusedFile, ErrorNamesTheKeyAndValue) {
  const Refusal& r = GetParam();
  std::string path;
  auto m = load_edited(r.name, r.arch, r.edit, &path);
  ASSERT_FALSE(m.has_value()) << r.name << ": loaded";
  const std::string& msg = m.error().message;
  EXPECT_THAT(msg, HasSubstr(path));
  for (const std::string& s : r.named) EXPECT_THAT(msg, HasSubstr(s)) << r.name;
}

INSTANTIATE_TEST_SUITE_P(Keys, RefusedFile, ::testing::ValuesIn(refusals()),
                         [](const ::testing::TestParamInfo<Refusal>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(RopeKeys, NeutralValuesAreAccepted) {
  auto m = load_edited("neutral", "llama",
                       set_keys({{"llama.attention.sliding_window", Value::u32(0)},
                                 {"llama.expert_count", Value::u32(0)},
                                 {"llama.attention.causal", Value::boolean(true)},
                                 {"llama.logit_scale", Value::f32(1.0f)},
                                 {"llama.final_logit_softcapping", Value::f32(0.0f)},
                                 {"llama.rope.scaling.yarn_log_multiplier", Value::f32(0.0f)},
                                 {"llama.rope.scaling.yarn_ext_factor", Value::f32(0.0f)}}));
  EXPECT_TRUE(m.has_value()) << m.error().message;
}

}  // namespace
}  // namespace pareto::model::test
