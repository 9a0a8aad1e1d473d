// Memory-bandwidth probe: the ceiling for token generation, which streams every weight once per
// token, so decode tok/s <= bandwidth / weight bytes per token. To make that a real upper bound
// the probe measures the fastest read rate it can reach, the way a decode reads its weights:
// each thread reads its share of a buffer much larger than the last-level cache through several
// concurrent streams (a matmul reads many weight rows at once), with the widest loads the CPU has
// (AVX-512, AVX2, else portable 64-bit words; chosen at run time) into independent accumulators.
// The buffer asks for transparent huge pages (fewer TLB misses). Several stream counts are timed
// and the best of all repetitions is reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/thread_pool.h"

namespace pareto::bench {

// Load width of the reader. kAuto: the widest the CPU supports.
enum class ReadIsa { kAuto, kPortable, kAvx2, kAvx512 };

struct BandwidthOptions {
  size_t buffer_bytes = size_t{1} << 30;  // 1 GiB: several times a large L3 (300 MiB here)
  int repetitions = 5;                    // best of N, per stream count
  ReadIsa isa = ReadIsa::kAuto;
  int streams = 0;  // concurrent streams per thread (1..16); 0 tries several and keeps the best
  // Threads claim chunks of this size from a shared counter; 0: each thread reads one fixed
  // share. Rounded down to whole pages.
  size_t chunk_bytes = size_t{2} << 20;
  // Pin reader i to the i-th allowed CPU while it reads (Linux). Off by default: on a shared
  // machine a pinned thread cannot leave a busy core, and with chunks claimed dynamically the
  // unpinned probe measured as high or higher (docs/benchmarks.md).
  bool pin_threads = false;
};

struct BandwidthResult {
  size_t buffer_bytes = 0;  // bytes read per pass (the request rounded up to whole 4 KiB pages)
  int threads = 0;
  double best_gb_per_s = 0;          // 1 GB = 1e9 bytes
  ReadIsa isa = ReadIsa::kPortable;  // the reader that ran
  int streams = 0;                   // streams per thread of the best pass
  uint64_t l3_bytes = 0;             // last-level cache size if the OS tells (0: unknown)
  // Sum of all 64-bit words of the buffer (mod 2^64) from the last pass: proves every word was
  // read exactly once, whatever the reader and the split.
  uint64_t checksum = 0;
};

// The probe's buffer, kept so that single passes can be timed again later (`pareto bench` times
// one right before each generation run, so that both see the same moment of a shared machine).
class BandwidthProbe {
 public:
  // Allocates and fills the buffer (first touched by the threads that will read it).
  BandwidthProbe(ThreadPool& pool, const BandwidthOptions& options = {});
  ~BandwidthProbe();
  BandwidthProbe(const BandwidthProbe&) = delete;
  BandwidthProbe& operator=(const BandwidthProbe&) = delete;

  // `repetitions` full reads for each stream count tried; the best of them all.
  BandwidthResult measure();
  // One full read with `streams` streams per thread (1..16): GB/s, and the checksum if asked.
  double pass(int streams, uint64_t* checksum = nullptr);
  size_t buffer_bytes() const;

 private:
  ThreadPool& pool_;
  BandwidthOptions options_;
  ReadIsa isa_ = ReadIsa::kPortable;
  size_t n_pages_ = 0;
  uint64_t* buffer_ = nullptr;  // n_pages_ 4 KiB pages, 2 MiB aligned
};

// BandwidthProbe(pool, options).measure(). Reads on pool.size() threads.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, const BandwidthOptions& options = {});

// The widest reader this CPU supports.
ReadIsa best_read_isa();
bool read_isa_supported(ReadIsa isa);
std::string_view read_isa_name(ReadIsa isa);

// Size of the largest CPU cache in bytes as Linux reports it (sysfs), 0 when unknown.
uint64_t last_level_cache_bytes();

// One line for reports, e.g. "AVX-512 loads, 8 streams/thread, 2 threads, 1.0 GiB buffer, L3 300
// MiB".
std::string describe(const BandwidthResult& r);

}  // namespace pareto::bench
