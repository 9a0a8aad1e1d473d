// `pareto bench kv`: what each KV-budget policy (kv/kv_policy.h) costs in quality at each budget,
// against the full cache on the same text, in one process:
//   - quality: the first half of each window of `context` tokens is the prompt (one forward, then
//     the budget is enforced), the second half is fed one token per step (teacher forcing, the
//     budget enforced after every step); at every predicted position, the KL divergence
//     KL(full || policy) of the next-token distributions, whether their top-1 tokens agree, and
//     the perplexity of the text under each;
//   - copy probe: a span of 2 x copy_span tokens from early in the window is repeated at its end;
//     after the repeat's first half, the share of the second half's tokens that are the top-1
//     prediction (small models copy through induction heads: evicting the source breaks it);
//   - memory: KV bytes held per token seen at the end of the quality run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace pareto::bench {

struct KvBenchOptions {
  std::string model;
  // Eviction policies by name, KIVI quantizations alone ("kivi4", "kivi2": the full cache
  // quantized, one row at 100%) or composed ("snapkv+kivi4"); every other row's cache is F16.
  // Empty: every registered policy but "full", then kivi4 and kivi2.
  std::vector<std::string> policies;
  std::vector<double> budgets;  // fractions in (0, 1]; empty: 0.1, 0.2, ..., 0.9
  // Per-layer budgets ("40%,30%,20%,10%,5%": fractions, one per layer), each evaluated as one more
  // row per policy (its budget: the layers' mean fraction). Given alone (no `budgets`), only they
  // are evaluated.
  std::vector<std::string> layer_budgets;
  std::string text_path;  // evaluated text; empty: the prompts of `workload` joined
  std::string workload;   // JSONL prompts (bench/spec_bench.h's format)
  int context = 0;        // tokens per window; 0: the model's trained context
  int windows = 2;        // windows of the text evaluated (fewer when it is shorter)
  int copy_span = 16;
  int threads = 0;
  int kivi_residual = 128;  // KIVI rows: the recent positions kept in f16 (kv_pool.h)
};

// Speed: decode tokens per second after `context` entries per layer and KV head, with each policy
// at each budget against the full cache. The entries are random keys and values at positions
// 0..context-1 (decode cost depends on how many entries there are, not on what they hold; no
// trained weights or hour-long prefill needed), the budget enforced once before timing, then
// after every step as in serving.
struct KvSpeedOptions {
  std::string model;
  std::vector<int> contexts;          // e.g. 4096, 16384, 32768
  std::vector<std::string> policies;  // empty: every one but "full"
  std::vector<double> budgets;        // empty: 0.2
  int steps = 32;                     // timed decode steps per run
  int threads = 0;
  bool flash_attention = false;
  int kivi_residual = 128;  // KIVI rows
};

struct KvSpeedRow {
  int context = 0;
  std::string policy;
  double budget = 1;
  double tok_per_s = 0;
  double tok_per_s_full = 0;
  double kv_bytes = 0;  // held when timing ends
  double kv_bytes_full = 0;
};

struct KvSpeedReport {
  std::string model;
  int threads = 0;
  std::vector<KvSpeedRow> rows;
  uint64_t peak_rss_bytes = 0;
};

Result<KvSpeedReport> run_kv_speed(const KvSpeedOptions& options);
std::string format_kv_speed_markdown(const KvSpeedReport& report);
std::string format_kv_speed_json(const KvSpeedReport& report);

struct KvBenchRow {
  std::string policy;
  double budget = 1;   // fraction of entries kept (per-layer budgets: the layers' mean)
  std::string layers;  // the per-layer budget evaluated; empty: `budget` for every layer
  double kl = 0;       // mean over predicted positions, nats
  double top1_agreement = 1;
  double perplexity = 0;
  double perplexity_full = 0;
  double copy_accuracy = 0;
  double copy_accuracy_full = 0;
  double kv_bytes_per_token = 0;
  double kv_bytes_per_token_full = 0;
  int64_t evicted = 0;  // entries evicted over the quality run
  // The process's peak resident set while this row ran (Linux: the peak is reset before each row
  // through /proc/self/clear_refs); 0 where the kernel refuses the reset.
  uint64_t peak_rss_bytes = 0;
};

struct KvBenchReport {
  std::string model;
  int context = 0;
  int windows = 0;
  int text_tokens = 0;
  int positions = 0;  // predicted positions per policy and budget (all windows)
  std::vector<KvBenchRow> rows;
  uint64_t peak_rss_bytes = 0;
};

Result<KvBenchReport> run_kv_bench(const KvBenchOptions& options);
std::string format_kv_markdown(const KvBenchReport& report);
// {"model", "context", ..., "results": [{"policy", "budget", "kl", "top1_agreement", "perplexity",
// "perplexity_full", "copy_accuracy", "copy_accuracy_full", "kv_bytes_per_token", ...}, ...]}
std::string format_kv_json(const KvBenchReport& report);
// Top-1 agreement against KV bytes per token, one line per policy (kv_plot.cpp).
std::string format_kv_svg(const KvBenchReport& report);

}  // namespace pareto::bench
