// `pareto bench spec`: plain decoding against each speculative strategy on workload prompts.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/spec_bench.h"
#include "cli.h"

namespace pareto::cli {
namespace {

struct SpecCliOptions {
  bench::SpecBenchOptions bench;
  std::string strategies;  // "ngram,sam"
  bool json = false;
  bool llamacpp_order = false;
  std::string plot;
};

int run_spec(SpecCliOptions opt) {
  opt.bench.target = resolve_model_path(opt.bench.target);
  if (opt.bench.target.empty()) return kExitError;
  if (opt.bench.workloads.empty()) {
    std::string shared = default_model_path();
    shared = shared.substr(0, shared.find("/models/"));
    opt.bench.workloads.push_back(shared + "/workloads/stories.jsonl");
  }
  for (size_t at = 0; !opt.strategies.empty() && at <= opt.strategies.size();) {
    const size_t comma = std::min(opt.strategies.find(',', at), opt.strategies.size());
    if (comma > at) opt.bench.strategies.push_back(opt.strategies.substr(at, comma - at));
    at = comma + 1;
  }
  opt.bench.batch_invariant = !opt.llamacpp_order;
  auto report = bench::run_spec_bench(opt.bench);
  if (!report) return fail(report.error().message);
  const std::string text =
      opt.json ? bench::format_spec_json(*report) + "\n" : bench::format_spec_markdown(*report);
  std::fputs(text.c_str(), stdout);
  if (!opt.plot.empty()) {
    std::ofstream out(opt.plot);
    out << bench::format_spec_svg(*report);
    if (!out) return fail(opt.plot + ": cannot write the plot");
  }
  return kExitOk;
}

}  // namespace

Command add_bench_spec_command(CLI::App& bench) {
  auto opt = std::make_shared<SpecCliOptions>();
  CLI::App* app = bench.add_subcommand(
      "spec", "Speculative decoding: each strategy against plain greedy decoding, same prompts");
  app->add_option("-m,--model", opt->bench.target, "target model (default: stories260K)");
  app->add_option("--draft-model,--md", opt->bench.draft,
                  "draft model for the draft / draft-adaptive strategies");
  app->add_option("--workload", opt->bench.workloads,
                  "JSONL prompts {\"prompt\", \"max_tokens\"} (repeatable; default: "
                  "shared/workloads/stories.jsonl)");
  app->add_option("--spec", opt->strategies,
                  "comma-separated strategies (default: every speculative one that can run)");
  app->add_option("-t,--threads", opt->bench.threads, "threads (default: hardware threads)");
  add_sam_corpus_option(*app, opt->bench.sam_corpus);
  add_draft_type_option(*app, opt->bench.draft_type);
  app->add_option("--draft-max", opt->bench.draft_max, "longest draft per step")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app->add_flag(
      "--draft-fixed", opt->bench.fixed_draft_length,
      "ngram and sam propose every token they find (up to --draft-max), not the length that pays");
  app->add_option("--max-prompts", opt->bench.max_prompts, "first N prompts of each workload")
      ->check(CLI::NonNegativeNumber);
  app->add_option("-n,--max-tokens", opt->bench.max_tokens,
                  "tokens per prompt (default: each line's)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("-r,--repetitions", opt->bench.repetitions, "runs of every prompt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--cache-type", opt->bench.cache_type,
                  std::string("KV cache type: ") + kCacheTypes)
      ->capture_default_str();
  app->add_flag("--llamacpp-order", opt->llamacpp_order,
                "llama.cpp's batch-dependent summation order instead of batch-invariant rows "
                "(greedy outputs may then differ from plain decoding's)");
  app->add_flag("--json", opt->json, "print one JSON object instead of a Markdown table");
  app->add_option("--plot", opt->plot, "write the speed-up per strategy and workload as SVG");
  return {app, [opt] { return run_spec(*opt); }};
}

}  // namespace pareto::cli
