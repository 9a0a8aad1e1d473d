// `pareto bench`: prompt processing (pp) and token generation (tg) throughput, like llama-bench.
//   ppN: N prompt tokens in one forward into a fresh cache.
//   tgN: after a one-token prompt, N tokens one forward each (greedy), timing only those N.
// Each test runs once short as a warm-up, then `repetitions` times; figures are mean and sample
// standard deviation of tokens per second over the repetitions. With a bandwidth probe the report
// also gives the decode limit: bandwidth / weight bytes read per token, and the fraction of it tg
// reached, both against the best probe pass and pair by pair (probe pass, then tg run).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/thread_pool.h"
#include "formats/model_file.h"
#include "model/model.h"

namespace pareto::bench {

struct Summary {
  double mean = 0;
  double sd = 0;  // sample standard deviation (n - 1); 0 for fewer than two values
};
Summary summarize(std::span<const double> values);

struct TestResult {
  std::string test;             // "pp512", "tg128"
  std::vector<double> samples;  // tokens per second, one per repetition
  Summary tok_per_s;
  int parallel = 0;      // multi-sequence mode: sequences together (tok/s is their aggregate)
  int64_t kv_bytes = 0;  // multi-sequence mode: KV pool bytes held at the end of the test
};

struct DecodeLimit {
  double bandwidth_gb_per_s = 0;  // measured read bandwidth, 1 GB = 1e9 bytes
  uint64_t bytes_per_token = 0;   // weight bytes one generated token reads
  double tok_per_s = 0;           // bandwidth / bytes_per_token
  double fraction = 0;            // tg mean / tok_per_s (0 without a tg test)
  std::string probe;              // how it was measured: bench::describe(BandwidthResult)
  // Paired runs (with a tg test): `repetitions` times one probe pass (the best stream count)
  // right before one more tg run, so that both read memory at the same moment of a shared
  // machine; the fraction is taken per pair. Empty without a tg test.
  std::vector<double> paired_probe_gb_per_s;
  std::vector<double> paired_tg_gb_per_s;  // tg tok/s x bytes_per_token
  Summary paired_fraction;                 // of tg GB/s / probe GB/s over the pairs
};

struct BenchReport {
  std::string model;  // general.name, else the file name
  std::string model_path;
  std::string type;  // the type holding most weight bytes: "Q4_0"
  uint64_t model_bytes = 0;
  int64_t n_params = 0;
  int threads = 0;
  int repetitions = 0;
  int depth = 0;
  bool flash_attention = false;
  std::string cache_type_k, cache_type_v;
  bool batch_invariant = false;
  uint64_t peak_rss_bytes = 0;  // after the model tests, before the bandwidth probe
  std::vector<TestResult> results;
  std::optional<DecodeLimit> decode_limit;
};

struct BenchOptions {
  int n_prompt = 512;  // pp test size; 0 skips it
  int n_gen = 128;     // tg test size; 0 skips it
  int threads = 0;     // <= 0: hardware threads
  int repetitions = 5;
  int depth = 0;                 // tokens in the cache before each test (llama-bench -d)
  bool flash_attention = false;  // online-softmax attention (llama.cpp -fa)
  size_t bandwidth_bytes = size_t{1} << 30;  // bandwidth probe buffer; 0 skips the probe
  // KV storage (llama-bench's -ctk / -ctv; f16 is its default and ours).
  kv::KvType cache_type_k = kv::KvType::kF16;
  kv::KvType cache_type_v = kv::KvType::kF16;
  bool batch_invariant = false;  // ForwardOptions::batch_invariant
  model::ModelLoadOptions load;  // kernel order, weight placement
  // Multi-sequence mode (llama-batched-bench -npp n_prompt -ntg n_gen -npl ...): for each N, N
  // sequences of an n_prompt-token prompt evaluated together (batches of at most 2048 entries),
  // then n_gen decode steps of N entries each. Replaces the pp/tg tests when not empty.
  std::vector<int> parallel;
};

// Loads `model_path` (GGUF) and runs the tests. Errors: unreadable or unsupported model, option
// out of range (negative sizes, repetitions < 1, pp or tg longer than the model's context).
Result<BenchReport> run_bench(const std::string& model_path, const BenchOptions& options);

// The tests on an already loaded model (pool.size() threads); no bandwidth probe.
Result<BenchReport> run_model_tests(const model::Model& model, ThreadPool& pool,
                                    const BenchOptions& options);

// Weight bytes one generated token reads: every tensor but token_embd (one row of it is read),
// plus token_embd again when it doubles as the output projection.
uint64_t weight_bytes_per_token(const formats::ModelFile& file);
// The process's peak resident set size (getrusage ru_maxrss).
uint64_t peak_rss_bytes();

// A llama-bench-style Markdown table, followed by the decode-limit line when measured.
std::string format_markdown(const BenchReport& report);
// {"model": ..., "type": ..., "threads": N, "peak_rss_bytes": N, "results": [{"test": "pp512",
//  "tok_per_s_mean": x, "tok_per_s_sd": y}, ...], plus model_path, model_bytes, n_params,
//  repetitions, n_depth, flash_attn, and (when measured) bandwidth_gb_per_s,
//  weight_bytes_per_token, tg_limit_tok_per_s, tg_fraction_of_limit, and with pairs
//  paired_probe_gb_per_s, paired_tg_gb_per_s (arrays), paired_fraction_mean, paired_fraction_sd}.
// Multi-sequence results add "parallel": N (tok_per_s_* then aggregate over the N sequences) and
// "kv_bytes".
std::string format_json(const BenchReport& report);

}  // namespace pareto::bench
