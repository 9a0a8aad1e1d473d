#include "bench/bench_runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/bandwidth.h"

namespace pareto::bench {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Deterministic prompt tokens spread over the vocabulary, as llama-bench feeds random ones.
std::vector<int32_t> prompt_tokens(int n, int n_vocab) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (int32_t& t : tokens) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<int32_t>(x % static_cast<uint64_t>(n_vocab));
  }
  return tokens;
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Times forwards in one configuration: the attention algorithm, and `depth` tokens already in
// the cache (llama-bench -d), evaluated once, untimed; each test rolls the cache back to them.
class TestRunner {
 public:
  TestRunner(const model::Model& model, ThreadPool& pool, const BenchOptions& options)
      : model_(model),
        pool_(pool),
        depth_(options.depth),
        cache_(model.make_cache(options.depth + std::max({options.n_prompt, options.n_gen + 1, 16}),
                                options.cache_type_k, options.cache_type_v)) {
    forward_.batch_invariant = options.batch_invariant;
    forward_.attention = options.flash_attention ? kernels::AttentionAlgorithm::kOnlineSoftmax
                                                 : kernels::AttentionAlgorithm::kSoftmaxRows;
  }

  Status fill_depth() {
    if (depth_ == 0) return ok();
    return model_.forward(prompt_tokens(depth_, model_.config().n_vocab), cache_, logits_, pool_,
                          forward_);
  }

  // Seconds for one forward of n prompt tokens after the depth.
  Result<double> time_prompt(int n) {
    cache_.truncate(depth_);
    const std::vector<int32_t> tokens = prompt_tokens(n, model_.config().n_vocab);
    const auto start = std::chrono::steady_clock::now();
    PARETO_RETURN_IF_ERROR(model_.forward(tokens, cache_, logits_, pool_, forward_));
    return seconds_since(start);
  }

  // Seconds for n single-token forwards after a one-token prompt (not timed) at the depth,
  // feeding back argmax.
  Result<double> time_generation(int n) {
    cache_.truncate(depth_);
    const int32_t first = std::min(1, model_.config().n_vocab - 1);  // BOS in llama vocabularies
    PARETO_RETURN_IF_ERROR(step(first));
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) PARETO_RETURN_IF_ERROR(step(argmax(logits_)));
    return seconds_since(start);
  }

 private:
  Status step(int32_t token) {
    return model_.forward(std::span<const int32_t>(&token, 1), cache_, logits_, pool_, forward_);
  }

  const model::Model& model_;
  ThreadPool& pool_;
  int depth_;
  kv::KvCache cache_;
  model::ForwardOptions forward_;
  std::vector<float> logits_;
};

// llama-batched-bench's measurement: N sequences in one pool; their prompts in batches of at most
// 2048 entries, then n_gen steps of one entry per sequence (argmax fed back).
class ParallelRunner {
 public:
  ParallelRunner(const model::Model& model, ThreadPool& pool, const BenchOptions& options, int n)
      : model_(model), pool_(pool), options_(options), n_(n) {
    forward_.batch_invariant = options.batch_invariant;
    forward_.attention = options.flash_attention ? kernels::AttentionAlgorithm::kOnlineSoftmax
                                                 : kernels::AttentionAlgorithm::kSoftmaxRows;
  }

  // Seconds for the prompts and for the decode steps; kv_bytes: the pool's bytes at the end.
  Status run(double& prompt_seconds, double& decode_seconds, int64_t& kv_bytes) {
    auto kv_pool = std::make_shared<kv::KvPool>(
        model_.kv_pool_options(options_.cache_type_k, options_.cache_type_v));
    const int capacity = options_.n_prompt + options_.n_gen + 1;
    std::vector<kv::KvCache> caches;
    for (int s = 0; s < n_; ++s) caches.emplace_back(kv_pool, capacity);
    std::vector<kv::KvCache*> ptrs;
    for (kv::KvCache& c : caches) ptrs.push_back(&c);
    const int n_vocab = model_.config().n_vocab;
    std::vector<model::BatchEntry> batch;
    std::vector<int32_t> next(static_cast<size_t>(n_));
    const auto start = std::chrono::steady_clock::now();
    constexpr int kMaxBatch = 2048;  // llama-batched-bench's default n_batch
    const std::vector<int32_t> prompt = prompt_tokens(std::max(options_.n_prompt, 1), n_vocab);
    for (int s = 0; s < n_; ++s) {
      for (int i = 0; i < options_.n_prompt; ++i) {
        batch.push_back({prompt[static_cast<size_t>(i)], i, s, i + 1 == options_.n_prompt});
        if (static_cast<int>(batch.size()) == kMaxBatch)
          PARETO_RETURN_IF_ERROR(flush(batch, ptrs, next));
      }
    }
    PARETO_RETURN_IF_ERROR(flush(batch, ptrs, next));
    prompt_seconds = seconds_since(start);
    const auto decode_start = std::chrono::steady_clock::now();
    for (int step = 0; step < options_.n_gen; ++step) {
      for (int s = 0; s < n_; ++s) {
        batch.push_back({next[static_cast<size_t>(s)], options_.n_prompt + step, s, true});
      }
      PARETO_RETURN_IF_ERROR(flush(batch, ptrs, next));
    }
    decode_seconds = seconds_since(decode_start);
    kv_bytes = kv_pool->bytes_in_use();
    return ok();
  }

 private:
  // Evaluates `batch` and records each sequence's argmax where it asked for logits.
  Status flush(std::vector<model::BatchEntry>& batch, std::span<kv::KvCache* const> caches,
               std::vector<int32_t>& next) {
    if (batch.empty()) return ok();
    PARETO_RETURN_IF_ERROR(model_.forward(batch, caches, logits_, workspace_, pool_, forward_));
    const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
    size_t row = 0;
    for (const model::BatchEntry& e : batch) {
      if (!e.logits) continue;
      const float* r = logits_.data() + row++ * n_vocab;
      next[static_cast<size_t>(e.seq)] = static_cast<int32_t>(std::max_element(r, r + n_vocab) - r);
    }
    batch.clear();
    return ok();
  }

  const model::Model& model_;
  ThreadPool& pool_;
  const BenchOptions& options_;
  int n_;
  model::ForwardOptions forward_;
  model::ForwardWorkspace workspace_;
  std::vector<float> logits_;
};

// "pp512", or "pp512 @ d4096" with a depth (llama-bench's names).
std::string test_name(std::string_view kind, int n, int depth) {
  return str_cat(kind, n, depth > 0 ? str_cat(" @ d", depth) : std::string());
}

// The type holding the most bytes among the file's matrices.
std::string dominant_type(const formats::ModelFile& file) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : file.tensors()) {
    if (t.shape.size() >= 2) bytes[std::string(type_name(t.type))] += t.nbytes;
  }
  std::string best = "none";
  uint64_t most = 0;
  for (const auto& [name, n] : bytes) {
    if (n > most) best = name, most = n;
  }
  return best;
}

std::string format_count(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// "0.65 GiB" / "455.2 KiB": llama-bench style sizes that stay readable for tiny test models.
std::string format_bytes(uint64_t n) {
  const double v = static_cast<double>(n);
  if (v >= 1024.0 * 1024.0 * 1024.0)
    return format_count(v / (1024.0 * 1024.0 * 1024.0), 2) + " GiB";
  if (v >= 1024.0 * 1024.0) return format_count(v / (1024.0 * 1024.0), 2) + " MiB";
  return format_count(v / 1024.0, 2) + " KiB";
}

std::string format_params(int64_t n) {
  const double v = static_cast<double>(n);
  if (v >= 1e9) return format_count(v / 1e9, 2) + " B";
  if (v >= 1e6) return format_count(v / 1e6, 2) + " M";
  return format_count(v / 1e3, 2) + " K";
}

}  // namespace

Summary summarize(std::span<const double> values) {
  Summary s;
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  if (values.size() < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(sq / static_cast<double>(values.size() - 1));
  return s;
}

uint64_t weight_bytes_per_token(const formats::ModelFile& file) {
  const bool tied = file.find_tensor("output.weight") == nullptr;
  uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    if (t.name == "token_embd.weight" && !tied) {
      total += t.rows() > 0 ? t.nbytes / static_cast<uint64_t>(t.rows()) : 0;  // one row
    } else {
      total += t.nbytes;
    }
  }
  return total;
}

uint64_t peak_rss_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

Result<BenchReport> run_model_tests(const model::Model& model, ThreadPool& pool,
                                    const BenchOptions& options) {
  const formats::ModelFile& file = model.file();
  if (options.n_prompt < 0 || options.n_gen < 0 || options.repetitions < 1) {
    return make_error("bench: ", file.path(), ": expected -p >= 0, -n >= 0 and -r >= 1, found -p ",
                      options.n_prompt, ", -n ", options.n_gen, ", -r ", options.repetitions);
  }
  const int context = model.config().context_length;
  if (options.depth < 0 || options.depth + options.n_prompt > context ||
      options.depth + options.n_gen + 1 > context) {
    return make_error("bench: ", file.path(), ": depth ", options.depth, " + pp", options.n_prompt,
                      " / tg", options.n_gen,
                      " (+1 prompt token) do not fit the model's context of ", context, " tokens");
  }
  BenchReport report;
  report.model_path = file.path();
  report.model = file.metadata()
                     .get_string("general.name")
                     .value_or(std::filesystem::path(file.path()).filename().string());
  report.type = dominant_type(file);
  report.model_bytes = file.data_bytes();
  for (const auto& t : file.tensors()) report.n_params += t.n_elements();
  report.threads = pool.size();
  report.repetitions = options.repetitions;
  report.depth = options.depth;
  report.flash_attention = options.flash_attention;
  report.cache_type_k = std::string(kv::kv_type_name(options.cache_type_k));
  report.cache_type_v = std::string(kv::kv_type_name(options.cache_type_v));
  report.batch_invariant = options.batch_invariant;
  PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.cache_type_k, model.config().head_dim));
  PARETO_RETURN_IF_ERROR(kv::check_kv_type(options.cache_type_v, model.config().head_dim));

  if (!options.parallel.empty()) {
    for (int n : options.parallel) {
      if (n < 1 || n > 4096) {
        return make_error("bench: --parallel: expected levels in [1, 4096], found ", n);
      }
    }
    for (int n : options.parallel) {
      ParallelRunner runner(model, pool, options, n);
      double pp = 0, tg = 0;
      int64_t kv_bytes = 0;
      PARETO_RETURN_IF_ERROR(runner.run(pp, tg, kv_bytes));  // warm-up
      TestResult rp{test_name("pp", options.n_prompt, 0), {}, {}, n, 0};
      TestResult rg{test_name("tg", options.n_gen, 0), {}, {}, n, 0};
      for (int rep = 0; rep < options.repetitions; ++rep) {
        PARETO_RETURN_IF_ERROR(runner.run(pp, tg, kv_bytes));
        if (options.n_prompt > 0) rp.samples.push_back(double{1.0} * n * options.n_prompt / pp);
        if (options.n_gen > 0) rg.samples.push_back(double{1.0} * n * options.n_gen / tg);
      }
      rp.kv_bytes = rg.kv_bytes = kv_bytes;
      rp.tok_per_s = summarize(rp.samples);
      rg.tok_per_s = summarize(rg.samples);
      if (options.n_prompt > 0) report.results.push_back(std::move(rp));
      if (options.n_gen > 0) report.results.push_back(std::move(rg));
    }
    report.peak_rss_bytes = peak_rss_bytes();
    return report;
  }

  TestRunner runner(model, pool, options);
  PARETO_RETURN_IF_ERROR(runner.fill_depth());
  if (options.n_prompt > 0) {
    PARETO_TRY(const double warm, runner.time_prompt(std::min(options.n_prompt, 16)));
    (void)warm;
    TestResult r{test_name("pp", options.n_prompt, options.depth), {}, {}};
    for (int rep = 0; rep < options.repetitions; ++rep) {
      PARETO_TRY(const double s, runner.time_prompt(options.n_prompt));
      r.samples.push_back(options.n_prompt / s);
    }
    r.tok_per_s = summarize(r.samples);
    report.results.push_back(std::move(r));
  }
  if (options.n_gen > 0) {
    PARETO_TRY(const double warm, runner.time_generation(std::min(options.n_gen, 4)));
    (void)warm;
    TestResult r{test_name("tg", options.n_gen, options.depth), {}, {}};
    for (int rep = 0; rep < options.repetitions; ++rep) {
      PARETO_TRY(const double s, runner.time_generation(options.n_gen));
      r.samples.push_back(options.n_gen / s);
    }
    r.tok_per_s = summarize(r.samples);
    report.results.push_back(std::move(r));
  }
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

Result<BenchReport> run_bench(const std::string& model_path, const BenchOptions& options) {
  PARETO_TRY(formats::ModelFile file, formats::open_model_file(model_path));
  auto shared = std::make_shared<const formats::ModelFile>(std::move(file));
  PARETO_TRY(std::unique_ptr<model::Model> model, model::Model::load(shared, options.load));
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  PARETO_TRY(BenchReport report, run_model_tests(*model, pool, options));
  if (options.bandwidth_bytes > 0 && options.parallel.empty()) {
    BandwidthProbe probe(pool, BandwidthOptions{options.bandwidth_bytes, 5});
    const BandwidthResult bw = probe.measure();
    DecodeLimit limit;
    limit.bandwidth_gb_per_s = bw.best_gb_per_s;
    limit.probe = describe(bw);
    limit.bytes_per_token = weight_bytes_per_token(*shared);
    limit.tok_per_s = limit.bytes_per_token > 0
                          ? bw.best_gb_per_s * 1e9 / static_cast<double>(limit.bytes_per_token)
                          : 0;
    for (const TestResult& r : report.results) {
      if (r.test.starts_with("tg") && limit.tok_per_s > 0) {
        limit.fraction = r.tok_per_s.mean / limit.tok_per_s;
      }
    }
    if (options.n_gen > 0 && limit.bytes_per_token > 0) {
      std::vector<double> fractions;
      TestRunner runner(*model, pool, options);
      PARETO_RETURN_IF_ERROR(runner.fill_depth());
      for (int rep = 0; rep < options.repetitions; ++rep) {
        const double probe_gb_per_s = probe.pass(bw.streams);
        PARETO_TRY(const double s, runner.time_generation(options.n_gen));
        const double tg_gb_per_s =
            options.n_gen * static_cast<double>(limit.bytes_per_token) / s / 1e9;
        limit.paired_probe_gb_per_s.push_back(probe_gb_per_s);
        limit.paired_tg_gb_per_s.push_back(tg_gb_per_s);
        fractions.push_back(tg_gb_per_s / probe_gb_per_s);
      }
      limit.paired_fraction = summarize(fractions);
    }
    report.decode_limit = limit;
  }
  return report;
}

std::string format_markdown(const BenchReport& r) {
  const bool parallel = !r.results.empty() && r.results.front().parallel > 0;
  std::string out =
      parallel ? "| model | type | size | threads | parallel | test | t/s (aggregate) | KV |\n"
                 "| ----- | ---- | ---: | ------: | -------: | ---: | --------------: | -: |\n"
               : "| model | type | size | params | threads | test | t/s |\n"
                 "| ----- | ---- | ---: | -----: | ------: | ---: | --: |\n";
  for (const TestResult& t : r.results) {
    const std::string speed =
        format_count(t.tok_per_s.mean, 2) + " ± " + format_count(t.tok_per_s.sd, 2);
    if (parallel) {
      out += str_cat("| ", r.model, " | ", r.type, " | ", format_bytes(r.model_bytes), " | ",
                     r.threads, " | ", t.parallel, " | ", t.test, " | ", speed, " | ",
                     format_bytes(static_cast<uint64_t>(t.kv_bytes)), " |\n");
      continue;
    }
    out +=
        str_cat("| ", r.model, " | ", r.type, " | ", format_bytes(r.model_bytes), " | ",
                format_params(r.n_params), " | ", r.threads, " | ", t.test, " | ", speed, " |\n");
  }
  out +=
      str_cat("\npeak RSS: ", format_bytes(r.peak_rss_bytes), "; repetitions: ", r.repetitions,
              "; attention: ", r.flash_attention ? "online softmax (flash, -fa)" : "softmax rows",
              "; KV: ", r.cache_type_k, "/", r.cache_type_v,
              r.batch_invariant ? "; batch-invariant" : "", "\n");
  if (r.decode_limit) {
    const DecodeLimit& d = *r.decode_limit;
    out += str_cat("decode limit: ", format_count(d.bandwidth_gb_per_s, 2), " GB/s",
                   d.probe.empty() ? "" : str_cat(" (", d.probe, ")"), " / ",
                   format_count(static_cast<double>(d.bytes_per_token) / 1e6, 1),
                   " MB per token = ", format_count(d.tok_per_s, 2), " tok/s; tg reached ",
                   format_count(100.0 * d.fraction, 1), "%\n");
    if (!d.paired_tg_gb_per_s.empty()) {
      const Summary probe = summarize(d.paired_probe_gb_per_s);
      const Summary tg = summarize(d.paired_tg_gb_per_s);
      out += str_cat("paired (probe pass, then tg run) x ", d.paired_tg_gb_per_s.size(), ": probe ",
                     format_count(probe.mean, 2), " ± ", format_count(probe.sd, 2),
                     " GB/s, tg read ", format_count(tg.mean, 2), " ± ", format_count(tg.sd, 2),
                     " GB/s; tg reached ", format_count(100.0 * d.paired_fraction.mean, 1), " ± ",
                     format_count(100.0 * d.paired_fraction.sd, 1), "% of the probe\n");
    }
  }
  return out;
}

std::string format_json(const BenchReport& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["type"] = r.type;
  j["threads"] = r.threads;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["results"] = nlohmann::ordered_json::array();
  for (const TestResult& t : r.results) {
    nlohmann::ordered_json item;
    item["test"] = t.test;
    item["tok_per_s_mean"] = t.tok_per_s.mean;
    item["tok_per_s_sd"] = t.tok_per_s.sd;
    if (t.parallel > 0) {
      item["parallel"] = t.parallel;
      item["kv_bytes"] = t.kv_bytes;
    }
    j["results"].push_back(std::move(item));
  }
  j["model_path"] = r.model_path;
  j["model_bytes"] = r.model_bytes;
  j["n_params"] = r.n_params;
  j["repetitions"] = r.repetitions;
  j["n_depth"] = r.depth;
  j["flash_attn"] = r.flash_attention;
  j["cache_type_k"] = r.cache_type_k;
  j["cache_type_v"] = r.cache_type_v;
  j["batch_invariant"] = r.batch_invariant;
  if (r.decode_limit) {
    j["bandwidth_gb_per_s"] = r.decode_limit->bandwidth_gb_per_s;
    j["weight_bytes_per_token"] = r.decode_limit->bytes_per_token;
    j["tg_limit_tok_per_s"] = r.decode_limit->tok_per_s;
    j["tg_fraction_of_limit"] = r.decode_limit->fraction;
    if (!r.decode_limit->probe.empty()) j["bandwidth_probe"] = r.decode_limit->probe;
    if (!r.decode_limit->paired_tg_gb_per_s.empty()) {
      j["paired_probe_gb_per_s"] = r.decode_limit->paired_probe_gb_per_s;
      j["paired_tg_gb_per_s"] = r.decode_limit->paired_tg_gb_per_s;
      j["paired_fraction_mean"] = r.decode_limit->paired_fraction.mean;
      j["paired_fraction_sd"] = r.decode_limit->paired_fraction.sd;
    }
  }
  // A model name read from a file may hold invalid UTF-8: replace it rather than throw.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace pareto::bench
