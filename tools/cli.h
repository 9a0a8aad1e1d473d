// Shared pieces of the `pareto` subcommands: each subcommand file registers its options on the
// CLI11 app and returns the action main() runs when that subcommand was chosen.
#pragma once

#include <cmath>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "kv/kv_policy.h"

namespace pareto::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // bad input: files, models, prompts
inline constexpr int kExitUsage = 2;  // bad command line

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_run_command(CLI::App& parent);
Command add_serve_command(CLI::App& parent);
Command add_tokenize_command(CLI::App& parent);
Command add_info_command(CLI::App& parent);
Command add_convert_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);
Command add_gen_model_command(CLI::App& parent);
// `pareto bench spec`, a subcommand of `bench` (bench.cpp runs it when chosen).
Command add_bench_spec_command(CLI::App& bench);
// `pareto bench kv`, the KV-budget policies' quality against the full cache (bench_kv.cpp).
Command add_bench_kv_command(CLI::App& bench);

// --kv-policy NAME and --kv-budget B (run, serve), checked when parsed by the engine's own parser
// and registry.
inline void add_kv_budget_options(CLI::App& app, std::string& policy, std::string& budget,
                                  const std::string& what) {
  std::string names;
  for (const std::string& n : kv::kv_policy_names()) names += (names.empty() ? "" : ", ") + n;
  app.add_option("--kv-policy", policy, what + ": the policy that evicts (" + names + ")")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            auto p = kv::make_kv_policy(text, kv::KvShape{1, 1, 1, 1});
            return p ? std::string() : p.error().message;
          },
          "NAME"));
  app.add_option("--kv-budget", budget,
                 what +
                     ": entries each layer and KV head keeps: 20% (of the tokens seen), 0.2, "
                     "or a count such as 512; or one per layer: 40%,30%,20%,10%")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            auto b = kv::parse_kv_budget(text);
            return b ? std::string() : b.error().message;
          },
          "BUDGET"));
}

// --sam-corpus FILE (repeatable): documents the "sam" drafter also drafts from.
inline void add_sam_corpus_option(CLI::App& app, std::vector<std::string>& files) {
  app.add_option("--sam-corpus", files,
                 "text file the sam strategy also drafts from (repeatable, one document each; "
                 "SAM Decoding's static corpus)");
}

// --draft-type TYPE: the draft model's matrices converted at load (LoadOptions::draft_weight_type).
inline void add_draft_type_option(CLI::App& app, std::string& type) {
  app.add_option("--draft-type", type,
                 "convert the draft model's F32/F16/BF16 matrices at load to q8_0, q4_0, f16 or "
                 "bf16, as llama-quantize would (faster drafts; output unchanged)");
}

// A number that is finite: CLI11's Range lets NaN through (every comparison with it is false).
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(text, &used);
          if (used == text.size() && std::isfinite(v)) return {};
        } catch (const std::exception&) {
        }
        return "must be a finite number, got '" + text + "'";
      },
      "FINITE");
}

// Prints "pareto: error: MESSAGE" on stderr; returns kExitError.
int fail(const std::string& message);

// $PARETO_SHARED/models/stories260K/stories260K.gguf; PARETO_SHARED defaults to ../shared beside
// the repository this binary was built from.
std::string default_model_path();

// The kernel settings of the environment, which the tools (not the library) read:
// PARETO_KERNELS=scalar|llamacpp-avx2|llamacpp-avx512|llamacpp-amx picks the summation order,
// PARETO_SCALAR_KERNELS=1 means scalar, PARETO_PACKED_WEIGHTS=0 turns weight placement off.
struct KernelEnvironment {
  std::string kernels;  // "" : llama.cpp's order for this CPU
  bool place_weights = true;
};
KernelEnvironment kernel_environment();

// The valid --cache-type-k / --cache-type-v names.
inline constexpr const char* kCacheTypes = "f32, f16, q8_0, q4_0, kivi4, kivi2";

// --cache-type-k / --ctk and --cache-type-v / --ctv (run, bench, serve).
inline void add_cache_type_options(CLI::App& app, std::string& key_type, std::string& value_type) {
  app.add_option("--cache-type-k,--ctk", key_type,
                 std::string("KV cache type of keys: ") + kCacheTypes)
      ->capture_default_str();
  app.add_option("--cache-type-v,--ctv", value_type,
                 std::string("KV cache type of values: ") + kCacheTypes)
      ->capture_default_str();
}

// --kivi-residual (run, serve): with KIVI cache types, the recent positions kept in f16.
inline void add_kivi_option(CLI::App& app, int& residual) {
  app.add_option("--kivi-residual", residual,
                 "KIVI cache types (kivi4, kivi2): the most recent positions kept in f16")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

// `model` if given; else the default model if it exists; else empty after printing an error that
// says how to pass one.
std::string resolve_model_path(const std::string& model);

}  // namespace pareto::cli
