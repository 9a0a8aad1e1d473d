#include "serve/metrics.h"

#include <cstdio>

namespace pareto::serve {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void gauge(std::string& out, std::string_view name, std::string_view help, double value,
           std::string_view type = "gauge") {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += number(value);
  out += '\n';
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  std::lock_guard<std::mutex> lock(mutex_);
  out += str_cat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += str_cat(name, "_bucket{le=\"", le, "\"} ", cumulative, "\n");
  }
  out += str_cat(name, "_sum ", number(sum_), "\n", name, "_count ", count_, "\n");
}

ServerMetrics::ServerMetrics()
    : time_to_first_token(latency_buckets()),
      inter_token_latency(latency_buckets()),
      request_latency(latency_buckets()) {}

void ServerMetrics::count_request(std::string_view outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = requests_.find(outcome);
  if (it == requests_.end()) it = requests_.emplace(std::string(outcome), 0).first;
  ++it->second;
}

void ServerMetrics::count_http(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++http_[status];
}

void ServerMetrics::add_speculation(int64_t drafted, int64_t accepted) {
  drafted_ += drafted;
  accepted_ += accepted;
}

std::string ServerMetrics::render(const EngineCounters* engine) const {
  std::string out;
  const EngineCounters c = engine ? *engine : EngineCounters{};
  // Pages the prefix cache alone holds are free on demand: they count as free (as vLLM counts its
  // cached free blocks).
  const int64_t used = c.kv_pages_in_use - c.kv_pages_cached;
  const double kv_usage = c.kv_pages_total > 0 ? static_cast<double>(used) / c.kv_pages_total : 0.0;
  gauge(out, "pareto_ready", "1 once the model is loaded", engine ? 1 : 0);
  gauge(out, "pareto_requests_running", "Requests being decoded", c.running);
  gauge(out, "pareto_requests_waiting", "Requests queued for a sequence", c.waiting);
  gauge(out, "pareto_kv_cache_usage_ratio", "KV pages in use / the pool's limit (0-1)", kv_usage);
  gauge(out, "pareto_kv_cache_pages_in_use", "KV pages held by requests", double(used));
  gauge(out, "pareto_prefix_cache_pages", "KV pages held by the prefix cache only (evictable)",
        double(c.kv_pages_cached));
  gauge(out, "pareto_prefix_cache_hit_tokens_total", "Prompt tokens taken from the prefix cache",
        double(c.prefix_cache_hit_tokens), "counter");
  gauge(out, "pareto_kv_cache_pages_total", "KV pages the pool may hold (0: no limit)",
        double(c.kv_pages_total));
  gauge(out, "pareto_kv_cache_bytes_in_use", "KV bytes in use (the prefix cache's included)",
        double(c.kv_bytes_in_use));
  gauge(out, "pareto_prompt_tokens_total", "Prompt tokens evaluated", double(c.prompt_tokens),
        "counter");
  gauge(out, "pareto_generation_tokens_total", "Tokens generated", double(c.generated_tokens),
        "counter");
  gauge(out, "pareto_kv_evicted_entries_total",
        "KV entries (one layer and KV head each) evicted by requests' KV budgets",
        double(c.kv_evicted_entries), "counter");
  gauge(out, "pareto_kv_evicted_bytes_total", "KV bytes those evicted entries held",
        double(c.kv_evicted_bytes), "counter");
  gauge(out, "pareto_spec_decode_draft_tokens_total", "Draft tokens proposed",
        double(drafted_.load()), "counter");
  gauge(out, "pareto_spec_decode_accepted_tokens_total", "Draft tokens accepted",
        double(accepted_.load()), "counter");
  gauge(out, "pareto_spec_decode_steps_drafted_total",
        "Steps with speculative requests decoding that allowed drafts",
        double(c.speculation_steps_drafted), "counter");
  gauge(out, "pareto_spec_decode_steps_plain_total",
        "Steps with speculative requests decoding that did not (--spec-max-batch)",
        double(c.speculation_steps_plain), "counter");
  gauge(out, "pareto_spec_decode_steps_explored_total",
        "Steps in which one speculative request drafted to re-measure drafting (automatic)",
        double(c.speculation_steps_explored), "counter");
  const double acceptance = drafted_ > 0 ? double(accepted_) / double(drafted_) : 0.0;
  gauge(out, "pareto_spec_decode_acceptance_ratio", "Accepted / drafted tokens (0-1)", acceptance);
  time_to_first_token.render(out, "pareto_time_to_first_token_seconds",
                             "Request received to its first generated token");
  inter_token_latency.render(out, "pareto_inter_token_latency_seconds",
                             "Time between streamed tokens of a choice");
  request_latency.render(out, "pareto_request_latency_seconds", "Request received to finished");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out += "# HELP pareto_requests_total Finished requests by outcome\n";
    out += "# TYPE pareto_requests_total counter\n";
    for (const auto& [outcome, n] : requests_) {
      out += str_cat("pareto_requests_total{outcome=\"", outcome, "\"} ", n, "\n");
    }
    out += "# HELP pareto_http_responses_total HTTP responses by status\n";
    out += "# TYPE pareto_http_responses_total counter\n";
    for (const auto& [status, n] : http_) {
      out += str_cat("pareto_http_responses_total{status=\"", status, "\"} ", n, "\n");
    }
  }
  // The names vLLM exports, which Kubernetes inference gateways (Gateway API inference extension)
  // read to route requests.
  gauge(out, "vllm:num_requests_running", "Requests being decoded", c.running);
  gauge(out, "vllm:num_requests_waiting", "Requests queued", c.waiting);
  gauge(out, "vllm:kv_cache_usage_perc", "KV cache usage (0-1)", kv_usage);
  gauge(out, "vllm:gpu_cache_usage_perc", "KV cache usage (0-1; the same value: no GPU)", kv_usage);
  gauge(out, "vllm:prompt_tokens_total", "Prompt tokens evaluated", double(c.prompt_tokens),
        "counter");
  gauge(out, "vllm:generation_tokens_total", "Tokens generated", double(c.generated_tokens),
        "counter");
  return out;
}

}  // namespace pareto::serve
