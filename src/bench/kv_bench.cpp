// `pareto bench kv` (kv_bench.h).
#include "bench/kv_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "bench/bench_runner.h"
#include "bench/spec_bench.h"
#include "formats/model_file.h"
#include "kv/kv_policy.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace pareto::bench {

namespace {

// log-softmax of one logits row, in double.
void log_softmax(const float* logits, int n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  double mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
}

// A row's policy name: an eviction policy ("snapkv"), a KIVI quantization alone ("kivi4": the
// full cache quantized), or both ("snapkv+kivi2"). Every other row keeps an F16 cache.
struct CacheChoice {
  std::string policy;
  kv::KvType type = kv::KvType::kF16;
};

Result<CacheChoice> parse_row_policy(const std::string& name) {
  const size_t plus = name.find('+');
  const std::string base = name.substr(0, plus);
  const std::string quant = plus == std::string::npos ? "" : name.substr(plus + 1);
  const auto kivi = [](const std::string& q) -> Result<kv::KvType> {
    auto t = kv::parse_kv_type(q);
    if (!t || kv::kivi_bits(*t) == 0) {
      return make_error("'", q, "' is not a KV quantization (kivi4, kivi2)");
    }
    return *t;
  };
  if (plus == std::string::npos) {
    if (auto t = kivi(base)) return CacheChoice{"full", *t};
    return CacheChoice{base, kv::KvType::kF16};
  }
  auto t = kivi(quant);
  if (!t) return make_error("bench kv: policy '", name, "': ", t.error().message);
  if (kivi(base)) return make_error("bench kv: policy '", name, "': two quantizations");
  return CacheChoice{base, *t};
}

// The cache a row runs on: `capacity` entries, the choice's storage type for keys and values.
kv::KvCache make_row_cache(const model::Model& m, const CacheChoice& choice, int capacity,
                           int kivi_residual) {
  kv::KvPoolOptions o = m.kv_pool_options(choice.type, choice.type, 0);
  o.kivi_residual = kivi_residual;
  return kv::KvCache(std::make_shared<kv::KvPool>(o), capacity);
}

struct RunResult {
  std::vector<std::vector<double>> logprobs;  // per predicted position (kept for the full cache)
  std::vector<int32_t> top1;
  double nll = 0;
  int64_t evicted = 0;
  double kv_bytes_per_token = 0;
};

// tokens[0, prompt) in one forward, then one token per step; the budget is enforced after each
// forward. Position i (i >= prompt) is predicted from the logits after tokens[0, i). `keep_rows`:
// keep every log-softmax row (the reference run). `full_rows`: compare with these as it goes.
Result<RunResult> evaluate(const model::Model& m, ThreadPool& pool,
                           const std::vector<int32_t>& tokens, int prompt,
                           const std::string& policy_name, int kivi_residual,
                           const kv::KvBudget& budget, bool keep_rows, const RunResult* full,
                           double* kl_sum, int* agree) {
  const int n = static_cast<int>(tokens.size());
  PARETO_TRY(CacheChoice choice, parse_row_policy(policy_name));
  kv::KvCache cache = make_row_cache(m, choice, n, kivi_residual);
  PARETO_TRY(std::unique_ptr<kv::KvPolicy> policy,
             kv::make_kv_policy(choice.policy, cache.shape()));
  model::KvPolicyObserver observer;
  observer.set(0, policy.get());
  model::ForwardOptions fo;
  fo.attention_observer = &observer;
  RunResult r;
  std::vector<float> logits;
  std::vector<double> lp;
  const int n_vocab = m.config().n_vocab;
  kv::KvCache parked = cache.empty_like();  // what `refresh` leaves out of attention
  for (int i = prompt; i <= n; ++i) {
    const std::span<const int32_t> in =
        i == prompt ? std::span<const int32_t>(tokens.data(), static_cast<size_t>(prompt))
                    : std::span<const int32_t>(tokens.data() + i - 1, 1);
    kv::before_kv_forward(cache, *policy, parked, i == prompt);
    PARETO_RETURN_IF_ERROR(m.forward(in, cache, logits, pool, fo));
    r.evicted += kv::enforce_kv_budget(cache, *policy, budget, &parked);
    if (i == n) break;
    log_softmax(logits.data(), n_vocab, lp);
    const auto at = static_cast<size_t>(i - prompt);
    const auto best = static_cast<int32_t>(std::max_element(lp.begin(), lp.end()) - lp.begin());
    r.top1.push_back(best);
    r.nll -= lp[static_cast<size_t>(tokens[static_cast<size_t>(i)])];
    if (full != nullptr) {
      const std::vector<double>& f = full->logprobs[at];
      double kl = 0;
      for (int v = 0; v < n_vocab; ++v) {
        const double pf = std::exp(f[static_cast<size_t>(v)]);
        kl += pf * (f[static_cast<size_t>(v)] - lp[static_cast<size_t>(v)]);
      }
      *kl_sum += std::max(0.0, kl);
      *agree += full->top1[at] == best ? 1 : 0;
    }
    if (keep_rows) r.logprobs.push_back(lp);
  }
  const kv::KvCache* both[] = {&cache, &parked};
  r.kv_bytes_per_token = static_cast<double>(kv::KvCache::bytes_held(both)) /
                         static_cast<double>(std::max(1, cache.n_tokens()));
  return r;
}

// Copy probes per window: the repeated span starts 1/16, 2/16, 3/16 and 4/16 into it.
constexpr int kProbes = 4;

// A window with a span of 2 * span tokens from k/16 into it repeated at its end (same length).
std::vector<int32_t> copy_probe(const std::vector<int32_t>& window, int span, int k) {
  const int n = static_cast<int>(window.size());
  const int src = n * k / 16;
  std::vector<int32_t> out(window.begin(), window.begin() + (n - 2 * span));
  out.insert(out.end(), window.begin() + src, window.begin() + src + 2 * span);
  return out;
}

int copy_hits(const RunResult& r, const std::vector<int32_t>& probe, int span) {
  int hits = 0;
  const int n = static_cast<int>(probe.size());
  for (int j = 0; j < span; ++j) {
    hits += r.top1[static_cast<size_t>(j)] == probe[static_cast<size_t>(n - span + j)] ? 1 : 0;
  }
  return hits;
}

Result<std::string> read_text(const KvBenchOptions& o) {
  if (!o.text_path.empty()) {
    std::ifstream in(o.text_path, std::ios::binary);
    if (!in) return make_error("bench kv: cannot read --text ", o.text_path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  PARETO_TRY(auto items, read_workload(o.workload));
  std::string text;
  for (const WorkloadItem& item : items) text += item.prompt + "\n";
  return text;
}

}  // namespace

namespace {

// Linux: lowers the process's peak resident set (VmHWM) to the current one, so that the next
// reading is the peak of what ran since; false when the kernel refuses.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return f.good();
}

uint64_t vm_hwm_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
  }
  return 0;
}

}  // namespace

Result<KvBenchReport> run_kv_bench(const KvBenchOptions& o) {
  std::vector<std::string> policies = o.policies;
  if (policies.empty()) {
    for (const std::string& p : kv::kv_policy_names()) {
      if (p != "full") policies.push_back(p);
    }
    policies.insert(policies.end(), {"kivi4", "kivi2"});
  }
  if (o.kivi_residual < 0) return make_error("bench kv: --kivi-residual ", o.kivi_residual, " < 0");
  std::vector<double> budgets = o.budgets;
  if (budgets.empty() && o.layer_budgets.empty()) {
    budgets = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  }
  for (double b : budgets) {
    if (!(b > 0 && b <= 1)) return make_error("bench kv: budget ", b, " outside (0, 1]");
  }
  PARETO_TRY(formats::ModelFile file, formats::open_model_file(o.model));
  auto shared = std::make_shared<const formats::ModelFile>(std::move(file));
  PARETO_TRY(std::unique_ptr<model::Model> m, model::Model::load(shared));
  // Every budget evaluated: the uniform fractions, then the per-layer ones.
  struct Evaluated {
    kv::KvBudget budget;
    double mean = 0;
    std::string layers;
  };
  std::vector<Evaluated> evaluated;
  for (double b : budgets) {
    kv::KvBudget budget;
    budget.fraction = b;
    evaluated.push_back({budget, b, ""});
  }
  for (const std::string& spec : o.layer_budgets) {
    PARETO_TRY(kv::KvBudget budget, kv::parse_kv_budget(spec));
    if (budget.layers.empty()) {
      return make_error("bench kv: layer budget '", spec, "' has one value (give one per layer)");
    }
    PARETO_RETURN_IF_ERROR(budget.check_layers(m->config().n_layers));
    double sum = 0;
    for (const kv::KvBudget& l : budget.layers) {
      if (l.entries > 0) {
        return make_error("bench kv: layer budget '", spec,
                          "': fractions or percentages only (bytes per token compare them)");
      }
      sum += l.fraction;
    }
    evaluated.push_back({budget, sum / static_cast<double>(budget.layers.size()), spec});
  }
  for (const std::string& p : policies) {
    PARETO_TRY(CacheChoice choice, parse_row_policy(p));
    PARETO_TRY(auto check, kv::make_kv_policy(choice.policy, m->make_cache(1).shape()));
    (void)check;
    PARETO_RETURN_IF_ERROR(kv::check_kv_type(choice.type, m->config().head_dim));
  }
  PARETO_TRY(tokenizer::Tokenizer tok, tokenizer::Tokenizer::from_metadata(shared->metadata()));
  PARETO_TRY(std::string text, read_text(o));
  const std::vector<int32_t> tokens = tok.encode(text, tok.add_bos_default());
  const int context = o.context > 0 ? o.context : m->config().context_length;
  if (context < 4 * o.copy_span || context < 16) {
    return make_error("bench kv: context ", context, " too short (at least ",
                      std::max(16, 4 * o.copy_span), " tokens)");
  }
  if (static_cast<int>(tokens.size()) < context) {
    return make_error("bench kv: the text has ", tokens.size(), " tokens, shorter than the ",
                      context, "-token context evaluated (",
                      o.text_path.empty() ? o.workload : o.text_path, ")");
  }
  const int windows = std::max(1, std::min(o.windows, static_cast<int>(tokens.size()) / context));
  const int threads = o.threads > 0
                          ? o.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  KvBenchReport report;
  report.model = o.model;
  report.context = context;
  report.windows = windows;
  report.text_tokens = static_cast<int>(tokens.size());
  const kv::KvBudget full_budget;
  struct Window {
    std::vector<int32_t> tokens;
    std::vector<std::vector<int32_t>> probes;
    RunResult full;
  };
  std::vector<Window> ws(static_cast<size_t>(windows));
  double full_nll = 0, full_bytes = 0;
  int full_copy = 0;
  for (int w = 0; w < windows; ++w) {
    Window& win = ws[static_cast<size_t>(w)];
    win.tokens.assign(tokens.begin() + static_cast<int64_t>(w) * context,
                      tokens.begin() + static_cast<int64_t>(w + 1) * context);
    PARETO_TRY(win.full, evaluate(*m, pool, win.tokens, context / 2, "full", 0, full_budget, true,
                                  nullptr, nullptr, nullptr));
    for (int k = 1; k <= kProbes; ++k) {
      win.probes.push_back(copy_probe(win.tokens, o.copy_span, k));
      PARETO_TRY(RunResult c, evaluate(*m, pool, win.probes.back(), context - o.copy_span, "full",
                                       0, full_budget, false, nullptr, nullptr, nullptr));
      full_copy += copy_hits(c, win.probes.back(), o.copy_span);
    }
    full_nll += win.full.nll;
    full_bytes += win.full.kv_bytes_per_token;
    report.positions += context - context / 2;
  }
  const double positions = report.positions;
  const double probes = static_cast<double>(windows) * kProbes * o.copy_span;
  // The rows reset the peak (per row); what ran before them counts in the run's peak here.
  report.peak_rss_bytes = std::max<uint64_t>(peak_rss_bytes(), vm_hwm_bytes());
  for (const std::string& p : policies) {
    // A quantization alone keeps every entry: one row, at 100%.
    const bool whole = parse_row_policy(p)->policy == "full";
    std::vector<Evaluated> all_entries(1);
    all_entries[0].mean = 1;
    for (const Evaluated& e : whole ? all_entries : evaluated) {
      const kv::KvBudget& budget = e.budget;
      KvBenchRow row;
      row.policy = p;
      row.budget = e.mean;
      row.layers = e.layers;
      const bool rss_reset = reset_peak_rss();
      double kl = 0, nll = 0, bytes = 0;
      int agree = 0, copy = 0;
      for (Window& win : ws) {
        PARETO_TRY(RunResult r, evaluate(*m, pool, win.tokens, context / 2, p, o.kivi_residual,
                                         budget, false, &win.full, &kl, &agree));
        for (const std::vector<int32_t>& probe : win.probes) {
          PARETO_TRY(RunResult c,
                     evaluate(*m, pool, probe, context - o.copy_span, p, o.kivi_residual, budget,
                              false, nullptr, nullptr, nullptr));
          copy += copy_hits(c, probe, o.copy_span);
        }
        nll += r.nll;
        bytes += r.kv_bytes_per_token;
        row.evicted += r.evicted;
      }
      row.kl = kl / positions;
      row.top1_agreement = agree / positions;
      row.perplexity = std::exp(nll / positions);
      row.perplexity_full = std::exp(full_nll / positions);
      row.copy_accuracy = copy / probes;
      row.copy_accuracy_full = full_copy / probes;
      row.kv_bytes_per_token = bytes / windows;
      row.kv_bytes_per_token_full = full_bytes / windows;
      row.peak_rss_bytes = rss_reset ? vm_hwm_bytes() : 0;
      report.peak_rss_bytes = std::max(report.peak_rss_bytes, row.peak_rss_bytes);
      report.rows.push_back(row);
    }
  }
  report.peak_rss_bytes = std::max<uint64_t>(report.peak_rss_bytes, peak_rss_bytes());
  return report;
}

namespace {

// Decode `steps` tokens after `context` random entries with `policy` at `budget`; tok/s.
Result<std::pair<double, double>> time_decode(const model::Model& m, ThreadPool& pool, int context,
                                              int steps, const std::string& name,
                                              const kv::KvBudget& budget, bool flash,
                                              int kivi_residual) {
  const model::ModelConfig& c = m.config();
  PARETO_TRY(CacheChoice choice, parse_row_policy(name));
  kv::KvCache cache = make_row_cache(m, choice, context + steps + 1, kivi_residual);
  PARETO_TRY(std::unique_ptr<kv::KvPolicy> policy,
             kv::make_kv_policy(choice.policy, cache.shape()));
  PARETO_RETURN_IF_ERROR(cache.reserve(context));
  // Uniform values in [-1, 1) from a 64-bit LCG: filling 32k entries x every layer and head is
  // hundreds of millions of values, and their distribution does not change the decode time.
  uint64_t state = 0x9e3779b97f4a7c15u;
  const auto next = [&state] {
    state = state * 6364136223846793005u + 1442695040888963407u;
    return static_cast<float>(static_cast<int32_t>(state >> 32)) * (1.0f / 2147483648.0f);
  };
  std::vector<float> k(static_cast<size_t>(c.head_dim)), v(k.size());
  for (int t = 0; t < context; ++t) {
    for (int l = 0; l < c.n_layers; ++l) {
      for (int h = 0; h < c.n_kv_heads; ++h) {
        for (size_t i = 0; i < k.size(); ++i) {
          k[i] = next();
          v[i] = next();
        }
        cache.append(l, h, t, k.data(), v.data());
      }
    }
  }
  cache.set_n_tokens(context);
  kv::KvCache parked = cache.empty_like();  // what `refresh` leaves out of attention
  kv::enforce_kv_budget(cache, *policy, budget, &parked);
  // KIVI quantizes the context at the next reserve, once, as it would after a prompt: not timed.
  PARETO_RETURN_IF_ERROR(cache.reserve(0));
  model::KvPolicyObserver observer;
  observer.set(0, policy.get());
  model::ForwardOptions fo;
  fo.attention_observer = &observer;
  if (flash) fo.attention = kernels::AttentionAlgorithm::kOnlineSoftmax;
  std::vector<float> logits;
  int32_t token = 1;
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {
    kv::before_kv_forward(cache, *policy, parked, false);
    PARETO_RETURN_IF_ERROR(m.forward(std::span<const int32_t>(&token, 1), cache, logits, pool, fo));
    kv::enforce_kv_budget(cache, *policy, budget, &parked);
    token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const kv::KvCache* both[] = {&cache, &parked};
  return std::make_pair(steps / seconds, static_cast<double>(kv::KvCache::bytes_held(both)));
}

}  // namespace

Result<KvSpeedReport> run_kv_speed(const KvSpeedOptions& o) {
  std::vector<std::string> policies = o.policies;
  if (policies.empty()) {
    for (const std::string& p : kv::kv_policy_names()) {
      if (p != "full") policies.push_back(p);
    }
  }
  std::vector<double> budgets = o.budgets.empty() ? std::vector<double>{0.2} : o.budgets;
  if (o.contexts.empty()) return make_error("bench kv --speed: no contexts (--contexts 4096,...)");
  PARETO_TRY(formats::ModelFile file, formats::open_model_file(o.model));
  auto shared = std::make_shared<const formats::ModelFile>(std::move(file));
  PARETO_TRY(std::unique_ptr<model::Model> m, model::Model::load(shared));
  const int threads = o.threads > 0
                          ? o.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  KvSpeedReport report;
  report.model = o.model;
  report.threads = threads;
  for (int context : o.contexts) {
    if (context < 1) return make_error("bench kv --speed: context ", context, " below 1");
    // Full first, then each policy; the full run is repeated after them and averaged, so a
    // machine that drifts during the runs affects both sides alike.
    PARETO_TRY(auto full_a, time_decode(*m, pool, context, o.steps, "full", kv::KvBudget{},
                                        o.flash_attention, o.kivi_residual));
    std::vector<KvSpeedRow> rows;
    for (const std::string& p : policies) {
      // A quantization alone keeps every entry: one row, at 100%.
      PARETO_TRY(CacheChoice choice, parse_row_policy(p));
      for (double b : choice.policy == "full" ? std::vector<double>{1.0} : budgets) {
        kv::KvBudget budget;
        budget.fraction = b;
        PARETO_TRY(auto r, time_decode(*m, pool, context, o.steps, p, budget, o.flash_attention,
                                       o.kivi_residual));
        KvSpeedRow row;
        row.context = context;
        row.policy = p;
        row.budget = b;
        row.tok_per_s = r.first;
        row.kv_bytes = r.second;
        rows.push_back(row);
      }
    }
    PARETO_TRY(auto full_b, time_decode(*m, pool, context, o.steps, "full", kv::KvBudget{},
                                        o.flash_attention, o.kivi_residual));
    for (KvSpeedRow& row : rows) {
      row.tok_per_s_full = (full_a.first + full_b.first) / 2;
      row.kv_bytes_full = full_b.second;
      report.rows.push_back(row);
    }
  }
  report.peak_rss_bytes = peak_rss_bytes();
  return report;
}

std::string format_kv_speed_markdown(const KvSpeedReport& r) {
  std::ostringstream s;
  s << "model " << r.model << ", " << r.threads << " threads, F16 KV cache; peak RSS "
    << r.peak_rss_bytes / (1 << 20) << " MiB\n\n";
  s << "| context | policy | budget | decode tok/s | full cache tok/s | speed-up | KV MiB (full) "
       "|\n|---:|---|---:|---:|---:|---:|---:|\n";
  s.setf(std::ios::fixed);
  for (const KvSpeedRow& x : r.rows) {
    s.precision(0);
    s << "| " << x.context << " | " << x.policy << " | " << x.budget * 100 << "% | ";
    s.precision(2);
    s << x.tok_per_s << " | " << x.tok_per_s_full << " | " << x.tok_per_s / x.tok_per_s_full
      << "x | ";
    s.precision(1);
    s << x.kv_bytes / (1 << 20) << " (" << x.kv_bytes_full / (1 << 20) << ") |\n";
  }
  return s.str();
}

std::string format_kv_speed_json(const KvSpeedReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const KvSpeedRow& x : r.rows) {
    rows.push_back({{"context", x.context},
                    {"policy", x.policy},
                    {"budget", x.budget},
                    {"tok_per_s", x.tok_per_s},
                    {"tok_per_s_full", x.tok_per_s_full},
                    {"kv_bytes", x.kv_bytes},
                    {"kv_bytes_full", x.kv_bytes_full}});
  }
  return nlohmann::json{{"model", r.model},
                        {"threads", r.threads},
                        {"peak_rss_bytes", r.peak_rss_bytes},
                        {"speed", rows}}
      .dump(2);
}

std::string format_kv_markdown(const KvBenchReport& r) {
  std::ostringstream s;
  s << "model " << r.model << ", context " << r.context << ", " << r.windows << " window(s) of "
    << r.text_tokens << " text tokens, " << r.positions << " predicted positions per row; peak RSS "
    << r.peak_rss_bytes / (1 << 20) << " MiB\n\n";
  s << "| policy | budget | KL (nats) | top-1 agreement | perplexity (full) | copy accuracy (full) "
       "| KV bytes/token (full) | evicted | peak RSS MiB |\n"
       "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  s.setf(std::ios::fixed);
  for (const KvBenchRow& x : r.rows) {
    s.precision(0);
    s << "| " << x.policy << " | ";
    if (x.layers.empty()) {
      s << x.budget * 100 << "% | ";
    } else {
      s << x.layers << " | ";
    }
    s.precision(4);
    s << x.kl << " | " << x.top1_agreement << " | ";
    s.precision(3);
    s << x.perplexity << " (" << x.perplexity_full << ") | " << x.copy_accuracy << " ("
      << x.copy_accuracy_full << ") | ";
    s.precision(0);
    s << x.kv_bytes_per_token << " (" << x.kv_bytes_per_token_full << ") | " << x.evicted << " | ";
    if (x.peak_rss_bytes > 0) {
      s << static_cast<double>(x.peak_rss_bytes) / (1 << 20) << " |\n";
    } else {
      s << "- |\n";
    }
  }
  return s.str();
}

std::string format_kv_json(const KvBenchReport& r) {
  nlohmann::json j;
  j["model"] = r.model;
  j["context"] = r.context;
  j["windows"] = r.windows;
  j["text_tokens"] = r.text_tokens;
  j["positions"] = r.positions;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  nlohmann::json rows = nlohmann::json::array();
  for (const KvBenchRow& x : r.rows) {
    rows.push_back({{"policy", x.policy},
                    {"budget", x.budget},
                    {"kl", x.kl},
                    {"top1_agreement", x.top1_agreement},
                    {"perplexity", x.perplexity},
                    {"perplexity_full", x.perplexity_full},
                    {"copy_accuracy", x.copy_accuracy},
                    {"copy_accuracy_full", x.copy_accuracy_full},
                    {"kv_bytes_per_token", x.kv_bytes_per_token},
                    {"kv_bytes_per_token_full", x.kv_bytes_per_token_full},
                    {"evicted", x.evicted},
                    {"peak_rss_bytes", x.peak_rss_bytes}});
    if (!x.layers.empty()) rows.back()["layer_budgets"] = x.layers;
  }
  j["results"] = rows;
  return j.dump(2);
}

}  // namespace pareto::bench
