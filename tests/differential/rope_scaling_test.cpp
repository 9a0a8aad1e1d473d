// RoPE keys are honored as llama.cpp honors them: variants of a shared model (pycode7m, llama
// layout, adjacent pairs) and of a generated one (tiny-qwen2 F32, qwen2 layout, halves), each
// written here with extra GGUF keys or a rope_freqs.weight tensor, against llama.cpp references
// made from the very same files (data/README.md, "RoPE variants"): greedy tokens and top-8 logits
// bit for bit, with the AVX2 and the AVX-512 order. Each variant must also be a different model:
// the unmodified file, which is what an engine ignoring the keys computes (Pareto before it read
// them: all but rope.freq_base, which it read already), must fail the reference.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "oracle_cases.h"
#include "test_util.h"

namespace pareto::oracle {
namespace rope_scaling_test {
namespace {

using formats::Value;

uint64_t fnv1a64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 0xcbf29ce484222325ull;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h = (h ^ static_cast<uint8_t>(buf[i])) * 0x100000001b3ull;
    }
  }
  return h;
}

struct RopeVariant {
  const char* model;  // reference name: data/<model>.llamacpp-<build>.json
  Reference base;     // the unmodified model
  uint64_t fnv;       // FNV-1a 64 of the variant file the references were made from
  std::function<Status(formats::GgufWriter&)> edit;
};

void PrintTo(const RopeVariant& v, std::ostream* os) {
  *os << v.model;
}

const Reference kPycode7m{"pycode7m", "models/pycode/pycode7m.gguf", Build::kAvx512, 0};
const Reference kTinyQwen2{"tiny-qwen2-F32", "gen:tiny-qwen2:F32", Build::kAvx512, 0,
                           0x5e695efeb63531f7ull};

// Per-pair divisors for pycode7m's 24 pairs, 1 for the fastest pair up to 7.9 for the slowest
// (Llama 3.1 files have 1 for the fast pairs and up to 8 for the slow ones; here the fast pairs,
// which turn most over a short prompt, are divided too, so that the factors show in the tokens).
std::vector<uint8_t> rope_freqs_bytes() {
  std::vector<float> f(24);
  for (int i = 0; i < 24; ++i) f[static_cast<size_t>(i)] = 1.0f + 0.3f * static_cast<float>(i);
  std::vector<uint8_t> bytes(f.size() * sizeof(float));
  std::memcpy(bytes.data(), f.data(), bytes.size());
  return bytes;
}

std::vector<RopeVariant> variants() {
  return {
      {"pycode7m-rope-linear", kPycode7m, 0xee90e34a0bdd43d3ull,
       [](formats::GgufWriter& w) {
         w.set("llama.rope.scaling.type", Value::str("linear"));
         w.set("llama.rope.scaling.factor", Value::f32(4.0f));
         return ok();
       }},
      {"pycode7m-rope-scale-linear", kPycode7m, 0xe5fee8b5b777fa4aull,
       [](formats::GgufWriter& w) {  // the legacy key, no type: llama.cpp's default "linear"
         w.set("llama.rope.scale_linear", Value::f32(2.0f));
         return ok();
       }},
      {"pycode7m-rope-yarn", kPycode7m, 0x6821e6da622dcaebull,
       [](formats::GgufWriter& w) {
         w.set("llama.rope.scaling.type", Value::str("yarn"));
         w.set("llama.rope.scaling.factor", Value::f32(4.0f));
         w.set("llama.rope.scaling.original_context_length", Value::u32(128));
         w.set("llama.rope.scaling.attn_factor", Value::f32(1.1f));
         // The values llama.cpp uses (it does not read these keys for llama): accepted.
         w.set("llama.rope.scaling.yarn_beta_fast", Value::f32(32.0f));
         w.set("llama.rope.scaling.yarn_beta_slow", Value::f32(1.0f));
         return ok();
       }},
      {"pycode7m-rope-freqs", kPycode7m, 0x5ddfed4d98e948c4ull,
       [](formats::GgufWriter& w) {
         return w.add_tensor("rope_freqs.weight", TensorType::F32, {24}, rope_freqs_bytes());
       }},
      {"pycode7m-rope-base", kPycode7m, 0xcd4ebb1372fd933full,
       [](formats::GgufWriter& w) {
         w.set("llama.rope.freq_base", Value::f32(500000.0f));
         return ok();
       }},
      {"tiny-qwen2-F32-rope-yarn", kTinyQwen2, 0x120b5abd392d05beull,
       [](formats::GgufWriter& w) {
         w.set("qwen2.rope.scaling.type", Value::str("yarn"));
         w.set("qwen2.rope.scaling.factor", Value::f32(8.0f));
         w.set("qwen2.rope.scaling.original_context_length", Value::u32(32));
         return ok();
       }},
  };
}

// Writes the variant into a temp folder (and, with PARETO_ROPE_VARIANTS_OUT set, a copy there:
// how the references' model files were made).
std::string write_variant(const RopeVariant& v) {
  auto base = formats::read_gguf(model_path(v.base));
  EXPECT_TRUE(base.has_value()) << base.error().message;
  if (!base) return {};
  formats::GgufWriter w;
  EXPECT_TRUE(w.add_model(*base).has_value());
  const Status st = v.edit(w);
  EXPECT_TRUE(st.has_value()) << st.error().message;
  const std::string path = (test::temp_dir(std::string("rope_") + v.model) / "model.gguf").string();
  const Status written = w.write(path);
  EXPECT_TRUE(written.has_value()) << written.error().message;
  if (const char* out = std::getenv("PARETO_ROPE_VARIANTS_OUT"); out && *out) {
    std::filesystem::copy_file(path, std::string(out) + "/" + v.model + ".gguf",
                               std::filesystem::copy_options::overwrite_existing);
  }
  const uint64_t fnv = fnv1a64(path);
  if (v.fnv != 0) {
    EXPECT_EQ(fnv, v.fnv) << v.model << ": the variant file is not the one the references were "
                          << "made from; remake them (data/README.md)";
  } else {
    ADD_FAILURE() << v.model << ": no checksum recorded; FNV-1a 64 of the file: 0x" << std::hex
                  << fnv;
  }
  return path;
}

std::unique_ptr<model::Model> load(const std::string& path) {
  auto file = formats::read_gguf(path);
  EXPECT_TRUE(file.has_value()) << file.error().message;
  if (!file) return nullptr;
  auto m = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << m.error().message;
  return m ? std::move(*m) : nullptr;
}

std::string reference_path(const std::string& model, Build build) {
  return (std::filesystem::path(__FILE__).parent_path() / "data" /
          (model + ".llamacpp-" + (build == Build::kAvx2 ? "avx2" : "avx512") + ".json"))
      .string();
}

class RopeScaling : public ::testing::TestWithParam<RopeVariant> {};

TEST_P(RopeScaling, VariantReproducesLlamaCppAndDiffersFromTheUnmodifiedFile) {
  const RopeVariant& v = GetParam();
  const std::string path = write_variant(v);
  ASSERT_FALSE(path.empty());
  auto variant = load(path);
  auto unmodified = load(model_path(v.base));
  ASSERT_NE(variant, nullptr);
  ASSERT_NE(unmodified, nullptr);
  ThreadPool pool(2);
  for (const Build build : {Build::kAvx2, Build::kAvx512}) {
    const auto cases = load_cases(reference_path(v.model, build));
    ASSERT_FALSE(cases.empty());
    const kernels::KernelPath order = build_order(build);
    const RunSummary s = run_reference(*variant, cases, pool, 0.0, order);
    EXPECT_TRUE(s.passed()) << v.model << " vs " << build_name(build) << ": " << s.cases_passed
                            << "/" << s.cases << " cases, tokens differ in " << s.token_mismatches
                            << ", " << s.logits_off << " of " << s.logits_checked
                            << " logits off (max error " << s.max_logit_error << ")";
    // What an engine that ignores the keys computes: the unmodified model.
    const RunSummary before = run_reference(*unmodified, cases, pool, 0.0, order);
    EXPECT_FALSE(before.passed()) << v.model << ": the unmodified file reproduces the reference";
    EXPECT_GT(before.max_logit_error, 1e-3) << v.model << ": the keys barely change the logits";
    std::cout << "[rope] " << v.model << " vs " << build_name(build) << ": " << s.cases_passed
              << "/" << s.cases << " cases bit for bit (" << s.logits_checked
              << " logits, max error " << s.max_logit_error
              << "); unmodified file: " << before.cases_passed << "/" << before.cases
              << " cases, tokens differ in " << before.token_mismatches << ", max logit error "
              << before.max_logit_error << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, RopeScaling, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<RopeVariant>& param_info) {
                           std::string name = param_info.param.model;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace rope_scaling_test
}  // namespace pareto::oracle
