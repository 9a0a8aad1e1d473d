#include "bench/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace pareto::bench {
namespace {

// Sums `n` words with eight independent accumulators so the loads, not the adds, set the pace.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += p[i + static_cast<size_t>(k)];
  }
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

}  // namespace

BandwidthResult measure_read_bandwidth(ThreadPool& pool, const BandwidthOptions& options) {
  const size_t n_words = std::max<size_t>(options.buffer_bytes / sizeof(uint64_t), 64);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[n_words]);
  // First touch from the pool's threads, so pages land near the threads that read them.
  pool.parallel_for(n_words, [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) buffer[i] = i * 0x9e3779b97f4a7c15ull;
  });
  std::atomic<uint64_t> sink{0};  // keeps the reads from being optimized away
  double best_seconds = 0;
  for (int rep = 0; rep < std::max(options.repetitions, 1); ++rep) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(n_words, [&](size_t begin, size_t end, int) {
      sink.fetch_add(sum_words(buffer.get() + begin, end - begin), std::memory_order_relaxed);
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rep == 0 || s < best_seconds) best_seconds = s;
  }
  BandwidthResult r;
  r.buffer_bytes = n_words * sizeof(uint64_t);
  r.threads = pool.size();
  r.best_gb_per_s = best_seconds > 0 ? static_cast<double>(r.buffer_bytes) / best_seconds / 1e9 : 0;
  return r;
}

}  // namespace pareto::bench
