// Forward pass of random-weight tiny llama and qwen2 models against a float64 reference (with
// either attention algorithm), batch vs one-token-at-a-time, truncate + recompute, and weights
// placed in packed or huge-page copies vs read from the mapped file.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tiny_model.h"

namespace pareto::model::test {
namespace {

struct Case {
  std::string arch;
  TensorType type;
  bool tied;
  double tol;        // absolute, on logits of magnitude ~1-10
  double loose_tol;  // after an ambiguous activation rounding: a few quantization steps
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << " " << type_name(c.type) << (c.tied ? " tied" : "");
}

std::string case_name(const ::testing::TestParamInfo<Case>& param_info) {
  return param_info.param.arch + "_" + std::string(type_name(param_info.param.type)) +
         (param_info.param.tied ? "_tied" : "");
}

TinySpec spec_for(const Case& c) {
  TinySpec s;
  s.arch = c.arch;
  s.weight_type = c.type;
  s.tied_output = c.tied;
  // Row lengths must be multiples of 32 for the blocked types (256 for K-quants); plain types get
  // odd ones.
  const int64_t block = traits(c.type).block_size;
  s.ffn_dim = block == 32 ? 96 : block == 256 ? 512 : 84;
  if (block == 256) s.dim = 256;
  s.n_vocab = 37;
  s.seed = static_cast<uint32_t>(c.type) * 7 + (c.arch == "qwen2" ? 100 : 0);
  return s;
}

// Writes the case's random model (spec s) to a fresh temp folder named by `prefix`; its path.
std::string write_case_model(const Case& c, const TinySpec& s, const std::string& prefix) {
  const auto path = (pareto::test::temp_dir(prefix + case_name({c, 0})) / "m.gguf").string();
  write_model(path, s, make_weights(s));
  return path;
}

class TinyModelTest : public ::testing::TestWithParam<Case> {};

TEST_P(TinyModelTest, MatchesFloat64ReferenceOnEveryKernelPath) {
  const Case c = GetParam();
  const TinySpec s = spec_for(c);
  const TinyWeights w = make_weights(s);
  const auto path = (pareto::test::temp_dir("model_ref_" + case_name({c, 0})) / "m.gguf").string();
  write_model(path, s, w);
  auto m = load_model(path);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().arch, c.arch);
  EXPECT_EQ(m->config().tied_output, c.tied);
  EXPECT_EQ(m->config().n_vocab, s.n_vocab);
  EXPECT_EQ(m->config().rope_style,
            c.arch == "qwen2" ? RopeStyle::kHalves : RopeStyle::kAdjacentPairs);

  // Positions after an ambiguous activation rounding (see ReferenceModel::ambiguous_from) may
  // legitimately differ by a quantization step; the others must agree to f32 accuracy. Of a fixed
  // list of prompts, use the first whose first 3 positions are unambiguous.
  ReferenceModel reference(s, w);
  std::vector<int32_t> tokens;
  std::vector<std::vector<double>> expected;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> pick(0, s.n_vocab - 1);
  for (int attempt = 0; attempt < 32 && tokens.empty(); ++attempt) {
    std::vector<int32_t> candidate(6);
    for (auto& t : candidate) t = pick(rng);
    expected = reference.forward(candidate);
    if (reference.ambiguous_from() >= 3) tokens = candidate;
  }
  ASSERT_FALSE(tokens.empty()) << "no prompt without ambiguous roundings in its first 3 positions";
  const size_t exact_until = static_cast<size_t>(reference.ambiguous_from());
  for (kernels::KernelPath kernel_path :
       {kernels::KernelPath::kPortable, kernels::KernelPath::kPortableAvx512,
        kernels::KernelPath::kLlamacppAmx, kernels::KernelPath::kScalar}) {
    for (kernels::AttentionAlgorithm attention :
         {kernels::AttentionAlgorithm::kSoftmaxRows, kernels::AttentionAlgorithm::kOnlineSoftmax}) {
      const std::string where = str_cat(kernels::kernel_path_name(kernel_path), " kernels, ",
                                        kernels::attention_algorithm_name(attention));
      // The AMX order rounds activations differently (F16 matrices: none): its own reference.
      std::vector<std::vector<double>> path_expected = expected;
      size_t path_exact_until = exact_until;
      if (kernel_path == kernels::KernelPath::kLlamacppAmx) {
        ReferenceModel amx_reference(s, w, kernel_path);
        path_expected = amx_reference.forward(tokens);
        path_exact_until =
            std::min(exact_until, static_cast<size_t>(amx_reference.ambiguous_from()));
      }
      ThreadPool pool(2);
      kv::KvCache cache = m->make_cache(16);
      std::vector<float> logits;
      ForwardOptions opt;
      opt.all_logits = true;
      opt.kernel_path = kernel_path;
      opt.attention = attention;
      auto st = m->forward(tokens, cache, logits, pool, opt);
      ASSERT_TRUE(st.has_value()) << st.error().message;
      ASSERT_EQ(logits.size(), tokens.size() * static_cast<size_t>(s.n_vocab));
      EXPECT_EQ(cache.n_tokens(), static_cast<int>(tokens.size()));
      double worst = 0, worst_ambiguous = 0, scale = 0;
      for (size_t t = 0; t < tokens.size(); ++t) {
        for (int v = 0; v < s.n_vocab; ++v) {
          const double e = path_expected[t][static_cast<size_t>(v)];
          const double err = std::fabs(logits[t * s.n_vocab + v] - e);
          (t < path_exact_until ? worst : worst_ambiguous) =
              std::max(t < path_exact_until ? worst : worst_ambiguous, err);
          scale = std::max(scale, std::fabs(e));
        }
      }
      EXPECT_LE(worst, c.tol) << where;
      EXPECT_LE(worst_ambiguous, c.loose_tol) << where;
      EXPECT_GT(scale, 0.5);  // the logits are not trivially small
    }
  }
}

// Tolerances: the reference applies the same activation rounding, so logits agree to f32 accuracy
// (1e-4) until an activation lands so close to a rounding boundary that f32 and float64 may round
// it differently; after that, up to a few quantization steps of the type. F16's steps are so fine
// (2^-11) that such near-ties are common; it gets one bound of a few F16 steps for all positions.
INSTANTIATE_TEST_SUITE_P(Types, TinyModelTest,
                         ::testing::Values(Case{"llama", TensorType::F32, false, 1e-4, 1e-4},
                                           Case{"llama", TensorType::F16, false, 5e-3, 5e-3},
                                           Case{"llama", TensorType::BF16, false, 1e-4, 1e-1},
                                           Case{"llama", TensorType::Q8_0, false, 1e-4, 3e-1},
                                           Case{"llama", TensorType::Q4_0, true, 1e-4, 3e-1},
                                           Case{"qwen2", TensorType::F32, true, 1e-4, 1e-4},
                                           Case{"qwen2", TensorType::F16, false, 5e-3, 5e-3},
                                           Case{"qwen2", TensorType::BF16, true, 1e-4, 1e-1},
                                           Case{"qwen2", TensorType::Q8_0, true, 1e-4, 3e-1},
                                           Case{"qwen2", TensorType::Q4_0, false, 1e-4, 3e-1},
                                           Case{"llama", TensorType::Q4_K, false, 1e-4, 3e-1},
                                           Case{"llama", TensorType::Q5_K, true, 1e-4, 3e-1},
                                           Case{"llama", TensorType::Q6_K, false, 1e-4, 3e-1},
                                           Case{"qwen2", TensorType::Q4_K, true, 1e-4, 3e-1}),
                         case_name);

class BatchTest : public ::testing::TestWithParam<Case> {};

// n tokens at once give the logits of feeding them one at a time.
TEST_P(BatchTest, BatchForwardEqualsOneTokenAtATime) {
  const Case c = GetParam();
  const TinySpec s = spec_for(c);
  const std::string path = write_case_model(c, s, "model_batch_");
  auto m = load_model(path);
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const std::vector<int32_t> tokens{3, 1, 4, 1, 5, 9, 2};
  kv::KvCache batch_cache = m->make_cache(8);
  std::vector<float> batch_logits;
  ForwardOptions all;
  all.all_logits = true;
  ASSERT_TRUE(m->forward(tokens, batch_cache, batch_logits, pool, all).has_value());
  kv::KvCache seq_cache = m->make_cache(8);
  std::vector<float> logits;
  for (size_t t = 0; t < tokens.size(); ++t) {
    ASSERT_TRUE(
        m->forward(std::span<const int32_t>(&tokens[t], 1), seq_cache, logits, pool).has_value());
    ASSERT_EQ(logits.size(), static_cast<size_t>(s.n_vocab));
    for (int v = 0; v < s.n_vocab; ++v) {
      ASSERT_NEAR(logits[v], batch_logits[t * s.n_vocab + v], c.tol) << "token " << t;
    }
  }
  // Last-token-only output is the last row of the all-logits output. Not bit for bit: like
  // llama.cpp, the default kernels pick the summation order by batch size (tinyBLAS for 2+ rows,
  // ggml_vec_dot for one), and the last-token-only pass runs its final layers on one row.
  kv::KvCache last_cache = m->make_cache(8);
  ASSERT_TRUE(m->forward(tokens, last_cache, logits, pool).has_value());
  ASSERT_EQ(logits.size(), static_cast<size_t>(s.n_vocab));
  for (int v = 0; v < s.n_vocab; ++v) {
    EXPECT_NEAR(logits[v], batch_logits[(tokens.size() - 1) * s.n_vocab + v], c.tol);
  }
}

// Rolling the cache back and recomputing the dropped tokens reproduces the logits exactly.
TEST_P(BatchTest, TruncateAndRecomputeGivesSameLogits) {
  const Case c = GetParam();
  const TinySpec s = spec_for(c);
  const std::string path = write_case_model(c, s, "model_trunc_");
  auto m = load_model(path);
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const std::vector<int32_t> prefix{2, 7, 1, 8};
  const std::vector<int32_t> tail{2, 8, 18};
  kv::KvCache cache = m->make_cache(12);
  std::vector<float> first, other, again;
  ASSERT_TRUE(m->forward(prefix, cache, first, pool).has_value());
  ASSERT_TRUE(m->forward(tail, cache, first, pool).has_value());
  // A different continuation, then roll back to the prefix and redo the original tail.
  cache.truncate(static_cast<int>(prefix.size()));
  EXPECT_EQ(cache.n_tokens(), static_cast<int>(prefix.size()));
  const std::vector<int32_t> wrong{30, 31};
  ASSERT_TRUE(m->forward(wrong, cache, other, pool).has_value());
  cache.truncate(static_cast<int>(prefix.size()));
  ASSERT_TRUE(m->forward(tail, cache, again, pool).has_value());
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

INSTANTIATE_TEST_SUITE_P(Types, BatchTest,
                         ::testing::Values(Case{"llama", TensorType::F32, false, 1e-4, 0},
                                           Case{"qwen2", TensorType::Q8_0, true, 2e-2, 0},
                                           Case{"llama", TensorType::Q4_0, false, 2e-2, 0}),
                         case_name);

// The load places the matrices in packed copies and byte-for-byte huge-page copies; with
// ModelLoadOptions::place_weights off the kernels read the mapped file. Either way the logits agree
// bit for bit.
class WeightPlacementTest : public ::testing::TestWithParam<Case> {};

TEST_P(WeightPlacementTest, CopiedWeightsGiveTheMappedFilesLogitsBitForBit) {
  const Case c = GetParam();
  const TinySpec s = spec_for(c);
  const std::string path = write_case_model(c, s, "model_place_");
  const std::vector<int32_t> tokens{3, 1, 4, 1, 5, 9, 2};
  std::vector<float> logits[2];
  for (int placed = 0; placed < 2; ++placed) {
    ModelLoadOptions load;
    load.place_weights = placed == 1;
    auto m = load_model(path, load);
    ASSERT_NE(m, nullptr);
    ThreadPool pool(2);
    kv::KvCache cache = m->make_cache(8);
    ForwardOptions all;
    all.all_logits = true;
    ASSERT_TRUE(m->forward(tokens, cache, logits[placed], pool, all).has_value());
    // One more token: the decode kernels (one row) as well as the prompt kernels.
    std::vector<float> next;
    ASSERT_TRUE(m->forward(std::vector<int32_t>{6}, cache, next, pool).has_value());
    logits[placed].insert(logits[placed].end(), next.begin(), next.end());
  }
  ASSERT_EQ(logits[0].size(), (tokens.size() + 1) * static_cast<size_t>(s.n_vocab));
  EXPECT_EQ(logits[0], logits[1]);
}

INSTANTIATE_TEST_SUITE_P(Types, WeightPlacementTest,
                         ::testing::Values(Case{"llama", TensorType::F16, true, 0, 0},
                                           Case{"qwen2", TensorType::BF16, false, 0, 0},
                                           Case{"llama", TensorType::Q5_K, false, 0, 0},
                                           Case{"qwen2", TensorType::Q8_0, true, 0, 0},
                                           Case{"llama", TensorType::Q4_K, true, 0, 0}),
                         case_name);

}  // namespace
}  // namespace pareto::model::test
