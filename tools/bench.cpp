// `pareto bench`: prompt-processing and generation throughput of a model, llama-bench style, with
// the memory-bandwidth ceiling for generation.
#include <cstdio>
#include <memory>
#include <string>

#include "bench/bench_runner.h"
#include "cli.h"

namespace pareto::cli {
namespace {

struct BenchCliOptions {
  std::string model;
  bench::BenchOptions bench;
  size_t bandwidth_mib = 1024;
  bool json = false;
};

int run_bench_command(const BenchCliOptions& opt) {
  const std::string path = resolve_model_path(opt.model);
  if (path.empty()) return kExitError;
  bench::BenchOptions options = opt.bench;
  options.bandwidth_bytes = opt.bandwidth_mib << 20;
  auto report = bench::run_bench(path, options);
  if (!report) return fail(report.error().message);
  const std::string text =
      opt.json ? bench::format_json(*report) + "\n" : bench::format_markdown(*report);
  std::fputs(text.c_str(), stdout);
  return kExitOk;
}

}  // namespace

Command add_bench_command(CLI::App& parent) {
  auto opt = std::make_shared<BenchCliOptions>();
  CLI::App* app = parent.add_subcommand(
      "bench", "Measure prompt processing (pp) and generation (tg) speed, like llama-bench");
  app->add_option("-m,--model", opt->model, "GGUF model (default: stories260K from shared/)");
  app->add_option("-p,--n-prompt", opt->bench.n_prompt, "prompt tokens of the pp test (0: skip)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app->add_option("-n,--n-gen", opt->bench.n_gen, "generated tokens of the tg test (0: skip)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app->add_option("-t,--threads", opt->bench.threads, "threads (default: hardware threads)");
  app->add_option("-r,--repetitions", opt->bench.repetitions, "timed repetitions of each test")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("-d,--n-depth", opt->bench.depth,
                  "tokens already in the KV cache before each test (llama-bench -d)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app->add_flag("--flash-attn,--fa", opt->bench.flash_attention,
                "online-softmax attention, one pass over the cache (llama.cpp -fa)");
  app->add_option("--bandwidth-mib", opt->bandwidth_mib,
                  "buffer of the memory-bandwidth probe in MiB (0: skip the probe)")
      ->capture_default_str();
  app->add_flag("--json", opt->json, "print one JSON object instead of a Markdown table");
  return {app, [opt] { return run_bench_command(*opt); }};
}

}  // namespace pareto::cli
