// THE ACCEPTANCE TEST: llama.cpp's reference outputs reproduced. For every case: feed
// prompt_tokens, greedy-decode as many tokens as the reference did, and require identical tokens
// and every listed top-8 logit within 1e-3 (F32 models) or 2e-2 (Q8_0, Q4_0).
// Two references, both llama.cpp build de3ff81 with the same settings, on different CPUs; each is
// checked strictly with the kernel order of the build that produced it:
//   - shared/oracle/<model>.llamacpp.json, the project's oracle, made by one of llama.cpp's
//     AVX-512 CPU variants: checked with KernelPath::kPortableAvx512;
//   - tests/differential/data/<model>.llamacpp-avx2.json, the same build's AVX2 (haswell) variant
//     on this project's AVX2 machine (see data/README.md): checked with KernelPath::kPortable.
// Quantized models turn one-ulp differences in float summation order into visible logit changes
// (an activation crosses a Q8_0 rounding boundary), so the two references disagree with each other
// on some quantized cases; with the matching order Pareto must reproduce each exactly.
// The llama2.c checkpoints of the same models must give the same greedy tokens.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/model_gen.h"
#include "formats/model_file.h"
#include "kernels/attention.h"
#include "kernels/kernel_path.h"
#include "model/model.h"
#include "test_util.h"

namespace pareto {
namespace {

struct OracleCase {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> greedy_tokens;
  // top_logits[i]: (token, logit) pairs before greedy_tokens[i] was chosen; log-probabilities
  // (logit minus the position's log-sum-exp) when `logprobs` (references made through
  // node-llama-cpp, which gives probabilities only).
  std::vector<std::vector<std::pair<int32_t, float>>> top_logits;
  bool logprobs = false;
};

std::vector<OracleCase> load_cases(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<OracleCase> cases;
  for (const auto& c : doc) {
    OracleCase oc;
    oc.prompt_tokens = c.at("prompt_tokens").get<std::vector<int32_t>>();
    oc.greedy_tokens = c.at("greedy_tokens").get<std::vector<int32_t>>();
    oc.logprobs = c.contains("top_logprobs");
    for (const auto& position : c.at(oc.logprobs ? "top_logprobs" : "top_logits")) {
      std::vector<std::pair<int32_t, float>> top;
      for (const auto& pair : position)
        top.emplace_back(pair.at(0).get<int32_t>(), pair.at(1).get<float>());
      oc.top_logits.push_back(std::move(top));
    }
    cases.push_back(std::move(oc));
  }
  return cases;
}

std::vector<OracleCase> load_oracle(const std::string& name) {
  return load_cases(test::shared_path("oracle/" + name + ".llamacpp.json"));
}

// This project's references (tests/differential/data), found beside this source file: `build`
// is avx2 or amx.
std::string data_reference_path(const std::string& name, const std::string& build) {
  return (std::filesystem::path(__FILE__).parent_path() / "data" /
          (name + ".llamacpp-" + build + ".json"))
      .string();
}
std::string avx2_reference_path(const std::string& name) {
  return data_reference_path(name, "avx2");
}

std::unique_ptr<model::Model> load_model(Result<formats::ModelFile> file) {
  EXPECT_TRUE(file.has_value()) << file.error().message;
  if (!file) return nullptr;
  auto m = model::Model::load(std::make_shared<const formats::ModelFile>(std::move(*file)));
  EXPECT_TRUE(m.has_value()) << m.error().message;
  return m ? std::move(*m) : nullptr;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

struct CaseResult {
  bool tokens_match = true;
  int logits_checked = 0;
  int logits_off = 0;
  double max_logit_error = 0;
  std::vector<int32_t> generated;
};

// Prompt, then greedy decoding one token at a time for as many steps as the oracle took.
CaseResult run_case(
    const model::Model& m, const OracleCase& oc, ThreadPool& pool, double tol, bool check_logits,
    kernels::KernelPath path,
    kernels::AttentionAlgorithm attention = kernels::AttentionAlgorithm::kSoftmaxRows) {
  CaseResult r;
  model::ForwardOptions options;
  options.kernel_path = path;
  options.attention = attention;
  const int steps = static_cast<int>(oc.greedy_tokens.size());
  kv::KvCache cache = m.make_cache(static_cast<int>(oc.prompt_tokens.size()) + steps);
  std::vector<float> logits;
  auto st = m.forward(oc.prompt_tokens, cache, logits, pool, options);
  EXPECT_TRUE(st.has_value()) << st.error().message;
  if (!st) return {false, 0, 0, 0, {}};
  for (int i = 0; i < steps; ++i) {
    if (check_logits && i < static_cast<int>(oc.top_logits.size())) {
      double log_sum_exp = 0;  // subtracted from our logits when the reference has log-probs
      if (oc.logprobs) {
        const double max = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (const float l : logits) sum += std::exp(static_cast<double>(l) - max);
        log_sum_exp = max + std::log(sum);
      }
      for (const auto& [token, expected] : oc.top_logits[static_cast<size_t>(i)]) {
        const double err = std::fabs(logits[static_cast<size_t>(token)] - log_sum_exp -
                                     static_cast<double>(expected));
        r.max_logit_error = std::max(r.max_logit_error, err);
        ++r.logits_checked;
        if (err > tol) ++r.logits_off;
      }
    }
    const int32_t next = argmax(logits);
    r.generated.push_back(next);
    if (next != oc.greedy_tokens[static_cast<size_t>(i)]) r.tokens_match = false;
    if (i + 1 == steps) break;
    // Continue with the oracle's token so one divergence does not hide later comparisons.
    const int32_t feed = oc.greedy_tokens[static_cast<size_t>(i)];
    st = m.forward(std::span<const int32_t>(&feed, 1), cache, logits, pool, options);
    EXPECT_TRUE(st.has_value()) << st.error().message;
    if (!st) return {false, 0, 0, 0, {}};
  }
  return r;
}

bool case_passed(const CaseResult& r) {
  return r.tokens_match && r.logits_off == 0 && r.logits_checked > 0;
}

enum class Reference { kSharedOracle, kAvx2, kAmx };

struct ModelCase {
  std::string name;  // oracle/<name>.llamacpp.json or data/<name>.llamacpp-{avx2,amx}.json
  std::string gguf;  // models/... in shared/, or "gen:<shape>:<type>" (generated_model_path)
  double tol;
  Reference reference;
  uint64_t fnv = 0;  // generated models: FNV-1a 64 of the file the reference was made from
};

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

// "gen:<shape>:<type>": the file `pareto gen-model --shape <shape> --type <type>` writes (seed 1),
// made here in a temp folder. Its weights are hashed from (seed, tensor, element) with integer
// arithmetic, so every platform writes the same bytes; the checksum proves it is the file the
// reference was made from.
std::string model_path(const ModelCase& mc) {
  if (mc.gguf.rfind("gen:", 0) != 0) return test::shared_path(mc.gguf);
  const size_t colon = mc.gguf.find(':', 4);
  const std::string shape_name = mc.gguf.substr(4, colon - 4);
  const std::string type = mc.gguf.substr(colon + 1);
  const auto shape = bench::find_model_shape(shape_name);
  EXPECT_TRUE(shape.has_value()) << mc.gguf;
  bench::GenerateOptions options;
  if (type == "Q4_K_M") {
    options.mix = bench::TypeMix::kQ4_K_M;
  } else {
    const auto t = parse_type_name(type);
    EXPECT_TRUE(t.has_value()) << mc.gguf;
    options.type = t.value_or(TensorType::F32);
  }
  const std::string path =
      (test::temp_dir("oracle_gen_" + shape_name + "_" + type) / "model.gguf").string();
  ThreadPool pool(2);
  if (shape) {
    const Status st = bench::generate_model(*shape, options, path, pool);
    EXPECT_TRUE(st.has_value()) << st.error().message;
  }
  EXPECT_EQ(fnv1a64(path), mc.fnv)
      << mc.gguf << ": the generator no longer writes the file the reference was made from; "
      << "remake the model and the reference (tests/differential/data/README.md)";
  return path;
}

void PrintTo(const ModelCase& mc, std::ostream* os) {
  *os << mc.name;
}

std::vector<OracleCase> load_reference(const ModelCase& mc) {
  if (mc.reference == Reference::kSharedOracle) return load_oracle(mc.name);
  const std::string path =
      data_reference_path(mc.name, mc.reference == Reference::kAvx2 ? "avx2" : "amx");
  EXPECT_TRUE(std::filesystem::exists(path)) << "missing reference: " << path;
  return load_cases(path);
}

// The kernel order of the llama.cpp build that made each reference.
kernels::KernelPath reference_path(Reference reference) {
  switch (reference) {
    case Reference::kSharedOracle:
      return kernels::KernelPath::kPortableAvx512;
    case Reference::kAvx2:
      return kernels::KernelPath::kPortable;
    case Reference::kAmx:
      return kernels::KernelPath::kLlamacppAmx;
  }
  return kernels::KernelPath::kPortable;
}

const char* reference_name(Reference reference) {
  switch (reference) {
    case Reference::kSharedOracle:
      return "shared oracle";
    case Reference::kAvx2:
      return "AVX2 reference";
    case Reference::kAmx:
      return "AMX reference";
  }
  return "";
}

class OracleLogits : public ::testing::TestWithParam<ModelCase> {};

TEST_P(OracleLogits, GreedyTokensAndTopLogitsMatchLlamaCpp) {
  const ModelCase mc = GetParam();
  const auto cases = load_reference(mc);
  ASSERT_FALSE(cases.empty());
  const kernels::KernelPath path = reference_path(mc.reference);
  auto m = load_model(formats::read_gguf(model_path(mc)));
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  int passed = 0;
  double worst = 0;
  for (size_t c = 0; c < cases.size(); ++c) {
    const CaseResult r = run_case(*m, cases[c], pool, mc.tol, true, path);
    EXPECT_GT(r.logits_checked, 0);
    worst = std::max(worst, r.max_logit_error);
    const bool ok = case_passed(r);
    EXPECT_TRUE(ok) << mc.name << " case " << c << " (" << kernels::kernel_path_name(path)
                    << "): " << (r.tokens_match ? "" : "greedy tokens differ, ") << r.logits_off
                    << " of " << r.logits_checked << " logits off by more than " << mc.tol
                    << " (max error " << r.max_logit_error << ")";
    if (ok) ++passed;
  }
  std::cout << "[oracle] " << mc.name << " vs " << reference_name(mc.reference) << " with "
            << kernels::kernel_path_name(path) << " order: " << passed << "/" << cases.size()
            << " cases passed (tolerance " << mc.tol << "), max |logit error| " << worst << "\n";
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

// The largest difference between llama.cpp's two builds (shared oracle: AVX-512; data/: AVX2) in
// a top logit both list, at positions whose context is the same in both (up to the first greedy
// token where they part): how far a change of summation order alone moves this model's logits.
double llamacpp_build_spread(const std::string& name) {
  const auto a = load_oracle(name);
  const auto b = load_cases(avx2_reference_path(name));
  EXPECT_EQ(a.size(), b.size()) << name;
  double spread = 0;
  for (size_t c = 0; c < std::min(a.size(), b.size()); ++c) {
    const size_t n = std::min(a[c].top_logits.size(), b[c].top_logits.size());
    for (size_t i = 0; i < n; ++i) {
      for (const auto& [token, la] : a[c].top_logits[i]) {
        for (const auto& [other, lb] : b[c].top_logits[i]) {
          if (other == token) spread = std::max(spread, static_cast<double>(std::fabs(la - lb)));
        }
      }
      if (a[c].greedy_tokens[i] != b[c].greedy_tokens[i]) break;
    }
  }
  return spread;
}

// Online-softmax attention (attention_online.h; the references were made without it) computes
// the same function with other rounding. Required in every case: the same greedy tokens. Top
// logits: F32 models within 1e-3, as above. In Q8_0/Q4_0 models an ulp of difference can move an
// activation across a Q8_0 rounding boundary and shift logits by a tenth or more, as it does
// between llama.cpp's own AVX2 and AVX-512 builds: their logits may differ from the oracle by no
// more than those two builds differ from each other (llamacpp_build_spread).
// The same holds for the llamacpp-amx kernel order (Q8_0 summed one block at a time, as
// llama.cpp's AMX build does; kernel_path.h): no reference file was made with that build.
void expect_within_build_spread(const ModelCase& mc, kernels::KernelPath path,
                                kernels::AttentionAlgorithm algorithm, const std::string& label) {
  const bool quantized = mc.tol > 1e-3;
  const double tol = quantized ? llamacpp_build_spread(mc.name) : mc.tol;
  const auto cases = load_reference(mc);
  ASSERT_FALSE(cases.empty());
  auto m = load_model(formats::read_gguf(model_path(mc)));
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  int token_mismatches = 0;
  double worst = 0;
  for (size_t c = 0; c < cases.size(); ++c) {
    const CaseResult r = run_case(*m, cases[c], pool, tol, true, path, algorithm);
    EXPECT_TRUE(r.tokens_match) << mc.name << " case " << c << ": greedy tokens differ";
    EXPECT_GT(r.logits_checked, 0);
    EXPECT_EQ(r.logits_off, 0) << mc.name << " case " << c << ": " << r.logits_off << " of "
                               << r.logits_checked << " top logits off by more than " << tol
                               << " (max error " << r.max_logit_error << ")";
    token_mismatches += r.tokens_match ? 0 : 1;
    worst = std::max(worst, r.max_logit_error);
  }
  std::cout << "[oracle] " << mc.name << " with " << label << ": greedy tokens differ in "
            << token_mismatches << "/" << cases.size() << " cases; max |logit error| " << worst
            << " (bound " << tol << (quantized ? ", llama.cpp's AVX2 vs AVX-512 builds" : "")
            << ")\n";
}

class OracleLogitsOnlineSoftmax : public ::testing::TestWithParam<ModelCase> {};

TEST_P(OracleLogitsOnlineSoftmax, GreedyTokensAndTopLogitsStayWithinTolerance) {
  expect_within_build_spread(GetParam(), kernels::KernelPath::kPortableAvx512,
                             kernels::AttentionAlgorithm::kOnlineSoftmax,
                             "online-softmax attention");
}

class OracleLogitsAmxOrder : public ::testing::TestWithParam<ModelCase> {};

TEST_P(OracleLogitsAmxOrder, GreedyTokensAndTopLogitsStayWithinTolerance) {
  expect_within_build_spread(GetParam(), kernels::KernelPath::kLlamacppAmx,
                             kernels::AttentionAlgorithm::kSoftmaxRows, "the llamacpp-amx order");
}

std::string case_name(const ::testing::TestParamInfo<ModelCase>& param_info) {
  std::string name = param_info.param.name;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// The shared oracle's models with their tolerances (F32: 1e-3; Q8_0/Q4_0: 2e-2).
std::vector<ModelCase> shared_oracle_cases() {
  return {
      {"stories260K", "models/stories260K/stories260K.gguf", 1e-3, Reference::kSharedOracle},
      {"stories260K-Q8_0", "models/stories260K/stories260K-Q8_0.gguf", 2e-2,
       Reference::kSharedOracle},
      {"stories260K-Q4_0", "models/stories260K/stories260K-Q4_0.gguf", 2e-2,
       Reference::kSharedOracle},
      {"pycode1m", "models/pycode/pycode1m.gguf", 1e-3, Reference::kSharedOracle},
      {"pycode7m", "models/pycode/pycode7m.gguf", 1e-3, Reference::kSharedOracle},
  };
}

INSTANTIATE_TEST_SUITE_P(SharedOracle, OracleLogits, ::testing::ValuesIn(shared_oracle_cases()),
                         case_name);

INSTANTIATE_TEST_SUITE_P(SharedOracle, OracleLogitsOnlineSoftmax,
                         ::testing::ValuesIn(shared_oracle_cases()), case_name);

INSTANTIATE_TEST_SUITE_P(SharedOracle, OracleLogitsAmxOrder,
                         ::testing::ValuesIn(shared_oracle_cases()), case_name);

// stories260K F32, Q8_0 and Q4_0 against one of this project's references (data/).
std::vector<ModelCase> stories260k_cases(Reference reference, double f32_tol, double quant_tol) {
  return {{"stories260K", "models/stories260K/stories260K.gguf", f32_tol, reference},
          {"stories260K-Q8_0", "models/stories260K/stories260K-Q8_0.gguf", quant_tol, reference},
          {"stories260K-Q4_0", "models/stories260K/stories260K-Q4_0.gguf", quant_tol, reference}};
}

INSTANTIATE_TEST_SUITE_P(Avx2Reference, OracleLogits,
                         ::testing::ValuesIn(stories260k_cases(Reference::kAvx2, 1e-3, 2e-2)),
                         case_name);

// llama.cpp's AMX build (its sapphirerapids CPU variant, AMX tiles for the Q8_0 / Q4_0 matrices
// whose row count is a multiple of 32) on this project's Sapphire Rapids machine, through
// node-llama-cpp (bench/llamacpp/reference.mjs; data/README.md): top-8 log-probabilities printed
// to 1e-6, compared within 1e-4 for every model. The same node-llama-cpp build on a CPU without
// AMX loads another variant, but the files hold what this build computed, so the check runs
// anywhere.
INSTANTIATE_TEST_SUITE_P(AmxReference, OracleLogits,
                         ::testing::ValuesIn(stories260k_cases(Reference::kAmx, 1e-4, 1e-4)),
                         case_name);

// K-quants: stories260K's rows (64) are too short for them, so random-weight models at the tiny-k
// shape (dim 256, 2 layers, every matrix's row count a multiple of 32: all in llama.cpp's AMX
// buffer), as gen-model writes them: Q4_K_M (Q4_K and Q6_K) and Q5_K. Made by the same
// node-llama-cpp build (data/README.md).
const ModelCase kTinyKQ4KM{"tiny-k-Q4_K_M", "gen:tiny-k:Q4_K_M", 1e-4, Reference::kAmx,
                           0x8dcf6a17ec790536ull};
const ModelCase kTinyKQ5K{"tiny-k-Q5_K", "gen:tiny-k:Q5_K", 1e-4, Reference::kAmx,
                          0x9691b5ecb793ef10ull};

INSTANTIATE_TEST_SUITE_P(AmxReferenceKquants, OracleLogits,
                         ::testing::Values(kTinyKQ4KM, kTinyKQ5K), case_name);

double max_error_with_path(const ModelCase& mc, kernels::KernelPath path) {
  const auto cases = load_reference(mc);
  EXPECT_FALSE(cases.empty());
  auto m = load_model(formats::read_gguf(model_path(mc)));
  if (m == nullptr) return 0;
  ThreadPool pool(2);
  double worst = 0;
  for (const OracleCase& oc : cases) {
    worst = std::max(worst, run_case(*m, oc, pool, mc.tol, true, path).max_logit_error);
  }
  std::cout << "[oracle] " << mc.name << " vs AMX reference with "
            << kernels::kernel_path_name(path) << " order: max |error| " << worst << "\n";
  return worst;
}

// The AMX references tell the orders apart: with the AVX-512 order (the shared oracle's) the
// models' log-probabilities are off by far more than the tolerance.
TEST(OracleLogitsAmxReference, Avx512OrderDoesNotReproduceIt) {
  const ModelCase q8{"stories260K-Q8_0", "models/stories260K/stories260K-Q8_0.gguf", 1e-4,
                     Reference::kAmx};
  EXPECT_GT(max_error_with_path(q8, kernels::KernelPath::kPortableAvx512), 1e-2);
  for (const ModelCase& mc : {kTinyKQ4KM, kTinyKQ5K}) {
    EXPECT_GT(max_error_with_path(mc, kernels::KernelPath::kPortableAvx512), 10 * mc.tol)
        << mc.name;
  }
}

struct Llama2cCase {
  std::string oracle;
  std::string checkpoint;
  std::string tokenizer;
};

void PrintTo(const Llama2cCase& lc, std::ostream* os) {
  *os << lc.checkpoint;
}

class Llama2cOracle : public ::testing::TestWithParam<Llama2cCase> {};

// The llama2.c checkpoint is the same model as the F32 GGUF: same greedy tokens on every case.
TEST_P(Llama2cOracle, CheckpointGivesTheGgufGreedyTokens) {
  const Llama2cCase lc = GetParam();
  const auto cases = load_oracle(lc.oracle);
  ASSERT_FALSE(cases.empty());
  auto m = load_model(
      formats::read_llama2c(test::shared_path(lc.checkpoint), test::shared_path(lc.tokenizer)));
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  int passed = 0;
  for (size_t c = 0; c < cases.size(); ++c) {
    const CaseResult r =
        run_case(*m, cases[c], pool, 0, false, kernels::KernelPath::kPortableAvx512);
    EXPECT_TRUE(r.tokens_match) << lc.checkpoint << " case " << c << ": greedy tokens differ";
    if (r.tokens_match) ++passed;
  }
  std::cout << "[oracle] " << lc.checkpoint << ": " << passed << "/" << cases.size()
            << " cases with the same greedy tokens\n";
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, Llama2cOracle,
                         ::testing::Values(Llama2cCase{"stories260K",
                                                       "models/stories260K/stories260K.bin",
                                                       "models/stories260K/tok512.bin"},
                                           Llama2cCase{"pycode1m", "models/pycode/pycode1m.bin",
                                                       "models/pycode/pycode4k.tok.bin"},
                                           Llama2cCase{"pycode7m", "models/pycode/pycode7m.bin",
                                                       "models/pycode/pycode4k.tok.bin"}),
                         [](const ::testing::TestParamInfo<Llama2cCase>& param_info) {
                           return param_info.param.oracle;
                         });

}  // namespace
}  // namespace pareto
