// Memory-bandwidth probe: the ceiling for token generation, which streams every weight once per
// token. Threads each read their share of a buffer much larger than the last-level cache.
#pragma once

#include <cstddef>

#include "base/thread_pool.h"

namespace pareto::bench {

struct BandwidthOptions {
  size_t buffer_bytes = size_t{1} << 30;  // 1 GiB: far beyond a 32 MiB L3
  int repetitions = 5;                    // best of N
};

struct BandwidthResult {
  size_t buffer_bytes = 0;
  int threads = 0;
  double best_gb_per_s = 0;  // 1 GB = 1e9 bytes
};

// Fills the buffer once (so its pages are resident), then times `repetitions` full reads.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, const BandwidthOptions& options = {});

}  // namespace pareto::bench
