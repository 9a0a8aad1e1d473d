// `pareto bench`: prompt-processing and generation throughput of a model, llama-bench style, with
// the memory-bandwidth ceiling for generation.
#include <cstdio>
#include <memory>
#include <string>

#include <algorithm>
#include <cstdlib>

#include "bench/bench_runner.h"
#include "cli.h"
#include "kernels/kernel_path.h"
#include "kv/kv_type.h"

namespace pareto::cli {
namespace {

struct BenchCliOptions {
  std::string model;
  bench::BenchOptions bench;
  size_t bandwidth_mib = 1024;
  bool json = false;
  std::string cache_type_k = "f16";
  std::string cache_type_v = "f16";
  std::string parallel;  // "1,2,4"
};

int run_bench_command(const BenchCliOptions& opt) {
  const std::string path = resolve_model_path(opt.model);
  if (path.empty()) return kExitError;
  bench::BenchOptions options = opt.bench;
  options.bandwidth_bytes = opt.bandwidth_mib << 20;
  auto ctk = kv::parse_kv_type(opt.cache_type_k);
  if (!ctk) return fail("--cache-type-k: " + ctk.error().message);
  auto ctv = kv::parse_kv_type(opt.cache_type_v);
  if (!ctv) return fail("--cache-type-v: " + ctv.error().message);
  options.cache_type_k = *ctk;
  options.cache_type_v = *ctv;
  const KernelEnvironment env = kernel_environment();
  if (!env.kernels.empty()) {
    auto order = kernels::kernel_path_from_name(env.kernels);
    if (!order) return fail("PARETO_KERNELS: " + order.error().message);
    options.load.kernel_path = *order;
  }
  options.load.place_weights = env.place_weights;
  for (size_t at = 0; !opt.parallel.empty() && at <= opt.parallel.size();) {
    const size_t comma = std::min(opt.parallel.find(',', at), opt.parallel.size());
    const std::string item = opt.parallel.substr(at, comma - at);
    char* end = nullptr;
    const long n = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || n < 1 || n > 4096) {
      return fail("--parallel: expected a comma-separated list of levels in [1, 4096], found '" +
                  opt.parallel + "'");
    }
    options.parallel.push_back(static_cast<int>(n));
    at = comma + 1;
  }
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
  add_cache_type_options(*app, opt->cache_type_k, opt->cache_type_v);
  app->add_option("--parallel,--npl", opt->parallel,
                  "multi-sequence mode, like llama-batched-bench -npl: comma-separated numbers "
                  "of sequences, each with a -p token prompt then -n decode steps together");
  app->add_flag("--batch-invariant", opt->bench.batch_invariant,
                "compute every row in single-token order (results independent of the batch)");
  app->add_flag("--json", opt->json, "print one JSON object instead of a Markdown table");
  const Command spec = add_bench_spec_command(*app);
  const Command kv = add_bench_kv_command(*app);
  return {app, [opt, spec, kv] {
            if (spec.app->parsed()) return spec.run();
            if (kv.app->parsed()) return kv.run();
            return run_bench_command(*opt);
          }};
}

}  // namespace pareto::cli
