// The llama.cpp references of the differential tests and the code that runs a model against them.
//
// A reference is what one llama.cpp CPU build (de3ff81; data/README.md) computed for one model:
// for each case, the greedy tokens after a prompt and, before each, the 8 highest logits. Which
// build made it decides the summation order Pareto must use to reproduce it (kernel_path.h):
//   - shared/oracle/<model>.llamacpp.json: the project's oracle, an AVX-512 build, logits printed
//     to 1e-5;
//   - data/<model>.llamacpp-avx2.json and -avx512.json: llama.cpp's haswell and zen4 CPU variants,
//     logits printed with 9 significant digits, i.e. the exact floats: compared bit for bit;
//   - data/<model>.llamacpp-amx.json: its sapphirerapids (AMX) variant, logits printed to 1e-6, or
//     for the tiny-k models log-probabilities rounded to 1e-6;
//   - data/<model>.llamacpp-<avx2|avx512|amx>-f16kv.json: the same builds with llama.cpp's default
//     F16 KV cache instead of F32 (f16_kv_test.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernel_path.h"
#include "kv/kv_type.h"
#include "model/model.h"

namespace pareto::oracle {

struct OracleCase {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> greedy_tokens;
  // top_logits[i]: (token, logit) pairs before greedy_tokens[i] was chosen; log-probabilities
  // (logit minus the position's log-sum-exp) when `logprobs`.
  std::vector<std::vector<std::pair<int32_t, float>>> top_logits;
  bool logprobs = false;
};

std::vector<OracleCase> load_cases(const std::string& path);

// The llama.cpp build that made a reference.
enum class Build { kSharedOracle, kAvx2, kAvx512, kAmx };

struct Reference {
  std::string model;  // "stories260K-Q8_0", "tiny-qwen2-F16", ...
  std::string gguf;   // models/... in shared/, or "gen:<shape>:<type>" (gen-model, seed 1)
  Build build;
  // The largest |logit error| that still counts as reproducing the file: its print precision
  // (1e-5 and 1e-6 files: the rounding of the file plus half an ulp of the float read back;
  // log-probabilities: plus the rounding of our log-sum-exp), 0 for exact files.
  double tol;
  uint64_t fnv = 0;  // generated models: FNV-1a 64 of the file the reference was made from
  // Other orders that compute exactly the same arithmetic on this model as the reference's own
  // (for example the AMX order on a model with no matrix the AMX build treats differently): the
  // negative control checks they give bit-identical logits instead of failing.
  std::vector<kernels::KernelPath> same_arithmetic;
  // A known fidelity gap: Pareto's order does not reproduce this reference yet. 0 when none;
  // else the measured worst |logit error| rounded up: the test requires that the reference
  // still fails at `tol` (so a fix is noticed and the entry moves to the strict list) and that
  // the error stays within this bound (so the gap cannot silently grow). `gap_reason` says why.
  double gap = 0;
  const char* gap_reason = "";
  // The KV cache llama.cpp ran with: F32 (the files above) or its default F16
  // (<model>.llamacpp-<order>-f16kv.json).
  kv::KvType kv_type = kv::KvType::kF32;
};

void PrintTo(const Reference& r, std::ostream* os);
std::string test_name(const Reference& r);  // for parameterized test names

// The kernel order of the llama.cpp build that made `build`'s references, and a display name.
kernels::KernelPath build_order(Build build);
const char* build_name(Build build);

// The file of a reference, and the model file (generated into a temp folder for gen: models,
// checked against `fnv`).
std::string reference_file(const Reference& r);
std::string model_path(const Reference& r);
std::unique_ptr<model::Model> load_model(const Reference& r);

// Every reference of the suite, grouped by build (known gaps included).
std::vector<Reference> shared_oracle_references();
std::vector<Reference> exact_references(Build build);  // kAvx2 or kAvx512
std::vector<Reference> amx_references();
// The F16-KV references of a build (kAvx2, kAvx512 or kAmx), kv_type kF16, with the tolerance of
// the file's print precision (0 for the exact files, 2e-6 for the AMX ones); known gaps are not
// applied (f16_kv_test.cpp has its own measured bounds).
std::vector<Reference> f16_kv_references(Build build);

// Every kernel order.
std::vector<kernels::KernelPath> all_orders();

struct CaseResult {
  bool tokens_match = true;
  int logits_checked = 0;
  int logits_off = 0;
  double max_logit_error = 0;
};

// Prompt, then greedy decoding one token at a time for as many steps as the reference took,
// feeding the reference's tokens (one divergence does not hide later comparisons), with a KV cache
// of `kv_type` keys and values. `logits_out`, if given, receives every position's full logit row.
CaseResult run_case(
    const model::Model& m, const OracleCase& oc, ThreadPool& pool, double tol,
    kernels::KernelPath path,
    kernels::AttentionAlgorithm attention = kernels::AttentionAlgorithm::kSoftmaxRows,
    std::vector<std::vector<float>>* logits_out = nullptr, kv::KvType kv_type = kv::KvType::kF32);

struct RunSummary {
  int cases = 0;
  int cases_passed = 0;  // same greedy tokens and every listed logit within the tolerance
  int token_mismatches = 0;
  int logits_checked = 0;
  int logits_off = 0;
  double max_logit_error = 0;
  bool passed() const { return cases > 0 && cases_passed == cases && logits_checked > 0; }
};

RunSummary run_reference(
    const model::Model& m, const std::vector<OracleCase>& cases, ThreadPool& pool, double tol,
    kernels::KernelPath path,
    kernels::AttentionAlgorithm attention = kernels::AttentionAlgorithm::kSoftmaxRows,
    kv::KvType kv_type = kv::KvType::kF32);

}  // namespace pareto::oracle
