// Negative controls for the llama.cpp references (oracle_logits_test.cpp): a reference proves a
// kernel order only if every other order fails it. For every reference that Pareto reproduces
// (known gaps aside) and every other order:
//   - the exact references (bit for bit): the other order must fail: another greedy token or a
//     top logit that is not the same float. Where the other order computes exactly the same
//     arithmetic on that model (Reference::same_arithmetic: the AMX build on a model without a
//     matrix its AMX buffer sums in an order of its own), the logits must instead be
//     bit-identical to those of the reference's order: that is checked too;
//   - the references printed to 1e-5 or 1e-6 (shared oracle, AMX): two orders may differ by less
//     than the print precision on a given model (F32 models, small logits), so the control is
//     per set: with every other order, at least one model of the set fails. Each model's result
//     is printed.
// Online-softmax attention computes the same function with other rounding; its bound is measured.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "oracle_cases.h"

namespace pareto::oracle {
namespace oracle_controls_test {
namespace {

using kernels::KernelPath;

bool contains(const std::vector<KernelPath>& paths, KernelPath p) {
  return std::find(paths.begin(), paths.end(), p) != paths.end();
}

// Every logit of every position, in one order.
std::vector<std::vector<float>> all_logits(const model::Model& m,
                                           const std::vector<OracleCase>& cases, ThreadPool& pool,
                                           KernelPath path) {
  std::vector<std::vector<float>> rows;
  for (const OracleCase& oc : cases) run_case(m, oc, pool, 0, path, {}, &rows);
  return rows;
}

std::string order_name(KernelPath p) {
  return std::string(kernels::kernel_path_name(p));
}

class OtherOrdersFail : public ::testing::TestWithParam<Reference> {};

TEST_P(OtherOrdersFail, EveryOtherOrderFailsTheExactReference) {
  const Reference ref = GetParam();
  ASSERT_EQ(ref.tol, 0.0) << "per-model controls are for the exact references";
  const auto cases = load_cases(reference_file(ref));
  ASSERT_FALSE(cases.empty());
  auto m = load_model(ref);
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const KernelPath own = build_order(ref.build);
  for (const KernelPath other : all_orders()) {
    if (other == own) continue;
    if (contains(ref.same_arithmetic, other)) {
      const bool identical = all_logits(*m, cases, pool, own) == all_logits(*m, cases, pool, other);
      EXPECT_TRUE(identical) << ref.model << ": " << order_name(other)
                             << " should compute the same arithmetic as " << order_name(own);
      std::cout << "[control] " << ref.model << " " << build_name(ref.build) << ": "
                << order_name(other) << " gives the same bits as " << order_name(own) << "\n";
      continue;
    }
    const RunSummary s = run_reference(*m, cases, pool, ref.tol, other);
    std::cout << "[control] " << ref.model << " " << build_name(ref.build) << " with "
              << order_name(other) << ": " << s.cases_passed << "/" << s.cases
              << " cases pass, tokens differ in " << s.token_mismatches << ", " << s.logits_off
              << "/" << s.logits_checked << " logits differ, max |error| " << s.max_logit_error
              << "\n";
    EXPECT_FALSE(s.passed()) << ref.model << ": the " << build_name(ref.build) << " does not tell "
                             << order_name(other) << " from " << order_name(own);
  }
}

std::vector<Reference> without_gaps(std::vector<Reference> refs) {
  refs.erase(std::remove_if(refs.begin(), refs.end(), [](const Reference& r) { return r.gap > 0; }),
             refs.end());
  return refs;
}

std::string param_name(const ::testing::TestParamInfo<Reference>& info) {
  return test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Avx2Reference, OtherOrdersFail,
                         ::testing::ValuesIn(without_gaps(exact_references(Build::kAvx2))),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Avx512Reference, OtherOrdersFail,
                         ::testing::ValuesIn(without_gaps(exact_references(Build::kAvx512))),
                         param_name);

// Set-level control for a rounded reference set: with each other order, at least one model fails.
void expect_set_fails_with_other_orders(const std::vector<Reference>& refs, Build build) {
  ThreadPool pool(2);
  const KernelPath own = build_order(build);
  for (const KernelPath other : all_orders()) {
    if (other == own) continue;
    int failing = 0;
    for (const Reference& ref : refs) {
      if (ref.gap > 0) continue;
      const auto cases = load_cases(reference_file(ref));
      auto m = load_model(ref);
      ASSERT_NE(m, nullptr);
      const RunSummary s = run_reference(*m, cases, pool, ref.tol, other);
      if (!s.passed()) ++failing;
      std::cout << "[control] " << ref.model << " " << build_name(build) << " with "
                << order_name(other) << ": " << (s.passed() ? "passes" : "fails")
                << ", tokens differ in " << s.token_mismatches << "/" << s.cases << ", max |error| "
                << s.max_logit_error << " (tolerance " << ref.tol << ")\n";
    }
    EXPECT_GT(failing, 0) << "no model of the " << build_name(build) << " tells "
                          << order_name(other) << " from " << order_name(own);
  }
}

TEST(OracleControls, SharedOracleFailsWithEveryOtherOrder) {
  expect_set_fails_with_other_orders(shared_oracle_references(), Build::kSharedOracle);
}

TEST(OracleControls, AmxReferencesFailWithEveryOtherOrder) {
  expect_set_fails_with_other_orders(amx_references(), Build::kAmx);
}

// Online-softmax attention (attention_online.h) against the shared oracle, with the AVX-512
// order the references were made with. It sums the attention's exponentials in blocks of 16 keys
// with a running maximum instead of one softmax row, so its logits differ in the last bits, and
// in Q8_0/Q4_0 models such a difference can move an activation across a Q8_0 rounding boundary.
// Required: the same greedy tokens in every case, and top logits within the bound measured on
// 2026-12-04 (worst case in the comment) rounded up, so a change that moves them further fails.
struct OnlineCase {
  const char* model;
  double bound;
};

class OracleOnlineSoftmax : public ::testing::TestWithParam<OnlineCase> {};

TEST_P(OracleOnlineSoftmax, GreedyTokensAndTopLogitsStayWithinTheMeasuredBound) {
  const OnlineCase oc = GetParam();
  Reference ref;
  for (const Reference& r : shared_oracle_references()) {
    if (r.model == oc.model) ref = r;
  }
  ASSERT_EQ(ref.model, oc.model);
  const auto cases = load_cases(reference_file(ref));
  auto m = load_model(ref);
  ASSERT_NE(m, nullptr);
  ThreadPool pool(2);
  const RunSummary s = run_reference(*m, cases, pool, oc.bound, KernelPath::kPortableAvx512,
                                     kernels::AttentionAlgorithm::kOnlineSoftmax);
  std::cout << "[oracle] " << ref.model << " with online-softmax attention: tokens differ in "
            << s.token_mismatches << "/" << s.cases << " cases, max |logit error| "
            << s.max_logit_error << " (bound " << oc.bound << ")\n";
  EXPECT_EQ(s.token_mismatches, 0);
  EXPECT_EQ(s.logits_off, 0);
  EXPECT_GT(s.logits_checked, 0);
}

INSTANTIATE_TEST_SUITE_P(SharedOracle, OracleOnlineSoftmax,
                         // Measured: 1.05e-5, 0.155, 5.7e-6, 6.7e-6, 7.6e-6. F32 and Q4_0: a few
                         // ulps plus the file's 5e-6 rounding. Q8_0: in one case an activation
                         // crosses a Q8_0 rounding step, a shift of the size that separates
                         // llama.cpp's own AVX2 and AVX-512 builds on this model (0.17-0.22).
                         ::testing::Values(OnlineCase{"stories260K", 2e-5},
                                           OnlineCase{"stories260K-Q8_0", 0.16},
                                           OnlineCase{"stories260K-Q4_0", 2e-5},
                                           OnlineCase{"pycode1m", 2e-5},
                                           OnlineCase{"pycode7m", 2e-5}),
                         [](const ::testing::TestParamInfo<OnlineCase>& case_info) {
                           std::string name = case_info.param.model;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace oracle_controls_test
}  // namespace pareto::oracle
