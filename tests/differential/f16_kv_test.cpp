// F16 KV cache against llama.cpp with its default F16 cache (data/*.llamacpp-*-f16kv.json, made by
// the same builds as the F32-KV references; data/README.md). Pareto runs each with
// make_cache(..., kF16, kF16) in the kernel order of the build that made it. Required: the same
// greedy tokens in every case and every listed top-8 logit within the file's print precision (0
// for the AVX2 / AVX-512 files: bit for bit; 2e-6 for the AMX files, printed to 1e-6), except
// stories260K (F32) with the AVX-512 and AMX orders (kGaps below).
//
// What makes that possible: llama.cpp without flash attention reads an F16 cache through
// ggml_mul_mat with F16 as the vec_dot type, and so does Pareto's attention when the cache's keys
// / values are F16 (AttentionArgs::keys_f16 / values_f16, set by the forward from the pool):
//   - K q: the queries are rounded to F16 first; one token: ggml_vec_dot_f16 (the lanes of
//     ggml_vec_dot_f32, but a head_dim tail summed in double); a prompt: tinyBLAS F16 x F16 (one
//     accumulator of W lanes, then the horizontal sum) when head_dim % W == 0, since the rounded
//     queries are contiguous (with an F32 cache the permuted queries keep K q on vec_dot_f32);
//   - softmax(K q) V: the softmax row is rounded to F16 before the product with the transposed V.
//
// Negative control: the same references with an F32 cache fail, so the test tells the cache types
// apart.
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "oracle_cases.h"

namespace pareto::oracle {
namespace f16_kv_test {
namespace {

using kernels::KernelPath;

// The one file not reproduced: stories260K (F32 weights) with the AVX-512 and AMX orders, whose
// F32-KV references are a few ulps off too (oracle_cases.cpp, kStoriesF32Reason: cause not found;
// the AVX2 order and the quantized stories260K models are reproduced with either cache). Presumably
// the same difference: stored in F16, a key or value a few ulps off can round to the next F16 value
// (2^-11 relative), which at head_dim 8 moves the logits by far more (not shown directly: the
// references have no intermediate tensors). Measured 2026-12-04: 6.91e-3 with both orders, greedy
// tokens equal. The test requires that it stays within this bound and still fails at the print
// precision (so that a fix is noticed and the entry removed).
struct Gap {
  const char* model;
  Build build;
  double bound;
};
const Gap kGaps[] = {
    {"stories260K", Build::kAvx512, 7.5e-3},  // measured 6.908e-3
    {"stories260K", Build::kAmx, 7.5e-3},     // measured 6.908e-3
};

double gap_bound(const Reference& r) {
  for (const Gap& g : kGaps) {
    if (r.model == g.model && r.build == g.build) return g.bound;
  }
  return 0.0;
}

class F16Kv : public ::testing::TestWithParam<Reference> {};

TEST_P(F16Kv, GreedyTokensAndLogitsAgainstLlamaCppWithItsF16Cache) {
  const Reference ref = GetParam();
  ASSERT_EQ(ref.kv_type, kv::KvType::kF16);
  const auto cases = load_cases(reference_file(ref));
  ASSERT_FALSE(cases.empty());
  auto m = load_model(ref);
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const KernelPath path = build_order(ref.build);
  const double gap = gap_bound(ref);
  const RunSummary s = run_reference(*m, cases, pool, ref.tol, path, {}, ref.kv_type);
  std::cout << "[f16kv] " << ref.model << " vs " << build_name(ref.build) << " (F16 KV) with "
            << kernels::kernel_path_name(path) << " order: greedy tokens equal in "
            << s.cases - s.token_mismatches << "/" << s.cases << " cases, max |logit error| "
            << s.max_logit_error << " (print precision " << ref.tol << ")\n";
  EXPECT_GT(s.logits_checked, 0);
  EXPECT_EQ(s.token_mismatches, 0) << ref.model << ": greedy tokens differ from llama.cpp's";
  if (gap == 0.0) {
    EXPECT_EQ(s.logits_off, 0) << ref.model << ": logits beyond the print precision " << ref.tol;
    return;
  }
  EXPECT_GT(s.logits_off, 0) << ref.model << " now reproduces the F16-KV " << build_name(ref.build)
                             << ": remove its entry from kGaps (f16_kv_test.cpp) and the docs";
  EXPECT_LE(s.max_logit_error, gap) << ref.model << ": the known gap grew";
}

std::string param_name(const ::testing::TestParamInfo<Reference>& info) {
  return test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Avx2Reference, F16Kv, ::testing::ValuesIn(f16_kv_references(Build::kAvx2)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Avx512Reference, F16Kv,
                         ::testing::ValuesIn(f16_kv_references(Build::kAvx512)), param_name);
INSTANTIATE_TEST_SUITE_P(AmxReference, F16Kv, ::testing::ValuesIn(f16_kv_references(Build::kAmx)),
                         param_name);

// The same references with an F32 cache: every model must fail (another greedy token or a logit
// beyond the print precision). Each model's result is printed.
void expect_f32_cache_fails_each(Build build) {
  ThreadPool pool(2);
  const KernelPath path = build_order(build);
  for (const Reference& ref : f16_kv_references(build)) {
    const auto cases = load_cases(reference_file(ref));
    auto m = load_model(ref);
    ASSERT_NE(m, nullptr);
    const RunSummary s = run_reference(*m, cases, pool, ref.tol, path, {}, kv::KvType::kF32);
    const bool fails = s.logits_off > 0 || s.token_mismatches > 0;
    std::cout << "[f16kv control] " << ref.model << " " << build_name(build) << " (F16 KV) with an "
              << "F32 cache: " << (fails ? "fails" : "passes") << ", tokens differ in "
              << s.token_mismatches << "/" << s.cases << ", max |logit error| " << s.max_logit_error
              << " (print precision " << ref.tol << ")\n";
    EXPECT_TRUE(fails) << ref.model << ": an F32 cache reproduces the F16-KV " << build_name(build)
                       << " reference";
  }
}

TEST(F16KvControls, F32CacheFailsTheAvx2References) {
  expect_f32_cache_fails_each(Build::kAvx2);
}
TEST(F16KvControls, F32CacheFailsTheAvx512References) {
  expect_f32_cache_fails_each(Build::kAvx512);
}
TEST(F16KvControls, F32CacheFailsTheAmxReferences) {
  expect_f32_cache_fails_each(Build::kAmx);
}

}  // namespace
}  // namespace f16_kv_test
}  // namespace pareto::oracle
