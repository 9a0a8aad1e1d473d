// GET /metrics: Prometheus text exposition (format 0.0.4). Pareto's own names (pareto_*) plus
// the vLLM names that Kubernetes inference gateways read (vllm:num_requests_running,
// vllm:num_requests_waiting, vllm:kv_cache_usage_perc, vllm:gpu_cache_usage_perc, ...), so the
// server drops in behind them. Thread-safe: HTTP threads observe, any thread renders.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pareto/pareto.h"

namespace pareto::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket / _sum / _count series of `name`.
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), plus +Inf last
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  Histogram time_to_first_token;  // seconds, request received to first generated token
  Histogram inter_token_latency;  // seconds between streamed tokens of one choice
  Histogram request_latency;      // seconds, received to finished
  void count_request(std::string_view outcome);  // "stop", "length", "cancelled", "error", ...
  void count_http(int status);
  void add_speculation(int64_t drafted, int64_t accepted);
  // Everything, with the engine's gauges (null engine: still loading).
  std::string render(const EngineCounters* engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t, std::less<>> requests_;
  std::map<int, uint64_t> http_;
  std::atomic<int64_t> drafted_{0}, accepted_{0};
};

}  // namespace pareto::serve
