// `pareto bench spec`: plain greedy decoding and each speculative strategy on the same prompts, in
// one process, interleaved prompt by prompt (so a noisy machine slows them alike), reporting per
// strategy tokens per second, the speed-up over plain decoding, mean tokens per verification,
// acceptance rate, and whether every output equals plain decoding's (prompt by prompt, same run).
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "pareto/pareto.h"

namespace pareto::bench {

struct WorkloadItem {
  std::string id;
  std::string prompt;
  int max_tokens = 0;
};

// JSON Lines: one object per line with "prompt" (string) and "max_tokens" (positive integer);
// "id" optional. Errors name the file, the line and the field.
Result<std::vector<WorkloadItem>> read_workload(const std::string& path);

struct SpecBenchOptions {
  std::string target;
  std::string draft;                   // for "draft" / "draft-adaptive"; empty: those are skipped
  std::vector<std::string> workloads;  // JSONL files
  // Strategies to compare with plain decoding; empty: every registered speculative strategy
  // (the draft-model ones only with a draft).
  std::vector<std::string> strategies;
  int threads = 0;
  int draft_max = 8;
  bool fixed_draft_length = false;  // LoadOptions::fixed_draft_length
  int max_prompts = 0;              // per workload; 0: all
  int max_tokens = 0;               // > 0: overrides each line's max_tokens
  int repetitions = 1;
  // Batch-invariant numerics (the default): a verification computes each row as a one-token step
  // does, so greedy outputs must equal plain decoding's. Off: llama.cpp's batch-dependent order.
  bool batch_invariant = true;
  std::string cache_type = "f16";
  std::vector<std::string> sam_corpus;  // text files for "sam" (LoadOptions::sam_corpus_files)
  std::string draft_type;               // LoadOptions::draft_weight_type ("": the file's)
};

struct SpecResult {
  std::string name;
  std::string workload;  // file stem; "all" for the totals
  int64_t generated = 0;
  double seconds = 0;  // decode time (first generated token to the end), summed
  double tok_per_s = 0;
  double speedup = 0;          // over plain decoding of the same prompts
  SpeculationStats spec;       // summed over the prompts (by position: tree depth for trees)
  double mean_accepted = 0;    // tokens per verification (accepted + 1)
  double acceptance_rate = 0;  // accepted / drafted
  bool identical = true;       // every output equal to plain decoding's
  std::vector<std::string> differing;  // prompt ids whose output differed
};

struct SpecBenchReport {
  std::string target, draft;
  std::string draft_type;  // the draft's conversion at load, "" for none
  int threads = 0;
  int prompts = 0;
  bool batch_invariant = true;
  std::vector<SpecResult> baseline;  // per workload, then "all"
  std::vector<SpecResult> results;   // per strategy: per workload, then "all"
};

Result<SpecBenchReport> run_spec_bench(const SpecBenchOptions& options);

// A Markdown table of the "all" rows (and per workload when there are several).
std::string format_spec_markdown(const SpecBenchReport& report);
// {"baseline": {"tok_per_s": x}, "strategies": [{"name", "tok_per_s", "speedup",
// "mean_accepted", "acceptance_rate", "identical_to_baseline", ...}], "workloads": [...]}.
std::string format_spec_json(const SpecBenchReport& report);
// A bar chart of the speed-up per strategy and workload (SVG 1.1, self-contained).
std::string format_spec_svg(const SpecBenchReport& report);

}  // namespace pareto::bench
