// `pareto bench kv`: each KV-budget policy's quality cost against the full cache, per budget.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/kv_bench.h"
#include "cli.h"
#include "kv/kv_policy.h"

namespace pareto::cli {
namespace {

struct KvCliOptions {
  bench::KvBenchOptions bench;
  std::string policies;  // "window,h2o"
  std::string budgets;   // "10%,20%"
  bool json = false;
  std::string plot;
  bool speed = false;
  std::string contexts = "4096,16384,32768";
  int steps = 32;
  bool flash = false;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  for (size_t at = 0; !text.empty() && at <= text.size();) {
    const size_t comma = std::min(text.find(',', at), text.size());
    if (comma > at) out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

int run_kv(KvCliOptions opt) {
  opt.bench.model = resolve_model_path(opt.bench.model);
  if (opt.bench.model.empty()) return kExitError;
  if (opt.bench.workload.empty()) {
    std::string shared = default_model_path();
    shared = shared.substr(0, shared.find("/models/"));
    opt.bench.workload =
        shared + (opt.bench.model.find("pycode") != std::string::npos ? "/workloads/code.jsonl"
                                                                      : "/workloads/stories.jsonl");
  }
  opt.bench.policies = split_commas(opt.policies);
  for (const std::string& b : split_commas(opt.budgets)) {
    auto budget = kv::parse_kv_budget(b);
    if (!budget) return fail(budget.error().message);
    if (budget->entries > 0) return fail("bench kv: --budgets takes fractions or percentages");
    opt.bench.budgets.push_back(budget->fraction);
  }
  if (opt.speed) {
    bench::KvSpeedOptions so;
    so.model = opt.bench.model;
    so.policies = opt.bench.policies;
    so.budgets = opt.bench.budgets;
    so.threads = opt.bench.threads;
    so.steps = opt.steps;
    so.flash_attention = opt.flash;
    so.kivi_residual = opt.bench.kivi_residual;
    for (const std::string& c : split_commas(opt.contexts)) {
      try {
        so.contexts.push_back(std::stoi(c));
      } catch (const std::exception&) {
        return fail("bench kv: --contexts: '" + c + "' is not a number");
      }
    }
    auto report = bench::run_kv_speed(so);
    if (!report) return fail(report.error().message);
    const std::string text = opt.json ? bench::format_kv_speed_json(*report) + "\n"
                                      : bench::format_kv_speed_markdown(*report);
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  auto report = bench::run_kv_bench(opt.bench);
  if (!report) return fail(report.error().message);
  const std::string text =
      opt.json ? bench::format_kv_json(*report) + "\n" : bench::format_kv_markdown(*report);
  std::fputs(text.c_str(), stdout);
  if (!opt.plot.empty()) {
    std::ofstream out(opt.plot);
    out << bench::format_kv_svg(*report);
    if (!out) return fail(opt.plot + ": cannot write the plot");
  }
  return kExitOk;
}

}  // namespace

Command add_bench_kv_command(CLI::App& bench) {
  auto opt = std::make_shared<KvCliOptions>();
  CLI::App* app = bench.add_subcommand(
      "kv", "KV-cache budgets: each policy's quality against the full cache, per budget");
  app->add_option("-m,--model", opt->bench.model, "model (default: stories260K)");
  app->add_option("--policies", opt->policies,
                  "comma-separated KV policies, KIVI quantizations (kivi4, kivi2) or both "
                  "(snapkv+kivi4) (default: every policy but full, then kivi4, kivi2)");
  app->add_option("--kivi-residual", opt->bench.kivi_residual,
                  "KIVI rows: recent positions kept in f16")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--budgets", opt->budgets,
                  "comma-separated budgets, fractions or percentages (default: 10%..90%)");
  app->add_option("--layer-budget", opt->bench.layer_budgets,
                  "a per-layer budget evaluated as one more row per policy, one fraction or "
                  "percentage per layer: 40%,30%,20%,10%,5% (repeatable)");
  app->add_option("--text", opt->bench.text_path,
                  "evaluate on this text (default: the shared workload's prompts joined)");
  app->add_option("--workload", opt->bench.workload,
                  "JSONL prompts joined into the default text (default: shared/workloads/"
                  "code.jsonl for pycode models, stories.jsonl otherwise)");
  app->add_option("-c,--context", opt->bench.context,
                  "tokens per evaluated window (default: the model's trained context)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--windows", opt->bench.windows, "windows of the text evaluated")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--copy-span", opt->bench.copy_span,
                  "copy probe: the repeated span is twice this many tokens")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app->add_option("-t,--threads", opt->bench.threads, "threads (default: hardware threads)");
  app->add_flag("--speed", opt->speed,
                "decode speed instead of quality: random entries at each --contexts length, "
                "each policy at each budget against the full cache (any model file)");
  app->add_option("--contexts", opt->contexts, "--speed: comma-separated cache lengths")
      ->default_str("4096,16384,32768");
  app->add_option("--steps", opt->steps, "--speed: timed decode steps per run")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app->add_flag("--flash-attn,--fa", opt->flash, "--speed: online-softmax attention");
  app->add_option("--plot", opt->plot, "write top-1 agreement against KV memory per policy (SVG)");
  app->add_flag("--json", opt->json, "print one JSON object instead of a Markdown table");
  return {app, [opt] { return run_kv(*opt); }};
}

}  // namespace pareto::cli
