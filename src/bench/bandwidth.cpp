#include "bench/bandwidth.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define PARETO_BW_X86 1
#endif

#include "base/check.h"

namespace pareto::bench {
namespace {

constexpr size_t kPageBytes = 4096;
constexpr size_t kPageWords = kPageBytes / sizeof(uint64_t);
constexpr size_t kStepWords = 32;  // 256 bytes per stream per loop step: 4 AVX-512 / 8 AVX2 loads
constexpr size_t kStepsPerPage = kPageWords / kStepWords;
constexpr int kMaxStreams = 16;
constexpr size_t kHugePage = size_t{2} << 20;

// Each reader adds every 64-bit word of `streams` streams of n_steps * 256 bytes into independent
// accumulators (stream s feeds its own), so loads, not adds, set the pace; the streams advance
// together, as a matmul walks many weight rows at once. All readers return the same sum mod 2^64.
uint64_t read_portable(const uint64_t* const* p, int streams, size_t n_steps) {
  uint64_t acc[8] = {};
  for (size_t i = 0; i < n_steps; ++i) {
    for (int s = 0; s < streams; ++s) {
      const uint64_t* w = p[s] + i * kStepWords;
      for (size_t k = 0; k < kStepWords; ++k) acc[k % 8] += w[k];
    }
  }
  uint64_t sum = 0;
  for (uint64_t a : acc) sum += a;
  return sum;
}

#if defined(PARETO_BW_X86)
__attribute__((target("avx2"))) uint64_t read_avx2(const uint64_t* const* p, int streams,
                                                   size_t n_steps) {
  __m256i acc[8];
  for (auto& a : acc) a = _mm256_setzero_si256();
  for (size_t i = 0; i < n_steps; ++i) {
    for (int s = 0; s < streams; ++s) {
      const auto* w = reinterpret_cast<const __m256i*>(p[s] + i * kStepWords);
      for (int k = 0; k < 8; ++k) acc[k] = _mm256_add_epi64(acc[k], _mm256_loadu_si256(w + k));
    }
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm256_add_epi64(acc[0], acc[k]);
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[0]);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) uint64_t read_avx512(const uint64_t* const* p, int streams,
                                                        size_t n_steps) {
  // 8 accumulators: two streams' worth of 4 loads each, so consecutive streams do not chain.
  __m512i acc[8];
  for (auto& a : acc) a = _mm512_setzero_si512();
  for (size_t i = 0; i < n_steps; ++i) {
    for (int s = 0; s < streams; ++s) {
      const uint64_t* w = p[s] + i * kStepWords;
      __m512i* a = acc + 4 * (s & 1);
      for (int k = 0; k < 4; ++k) a[k] = _mm512_add_epi64(a[k], _mm512_loadu_si512(w + 8 * k));
    }
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm512_add_epi64(acc[0], acc[k]);
  alignas(64) uint64_t lanes[8];  // not _mm512_reduce_add_epi64: GCC 12 warns inside it
  _mm512_store_si512(lanes, acc[0]);
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  return sum;
}
#endif

using Reader = uint64_t (*)(const uint64_t* const*, int, size_t);

Reader reader_for(ReadIsa isa) {
#if defined(PARETO_BW_X86)
  if (isa == ReadIsa::kAvx512) return read_avx512;
  if (isa == ReadIsa::kAvx2) return read_avx2;
#endif
  return read_portable;
}

// Pages [first, first + count) of `buffer` split into `streams` contiguous runs read together;
// runs one page longer than the shortest finish alone.
uint64_t read_pages(Reader reader, const uint64_t* buffer, size_t first, size_t count,
                    int streams) {
  std::array<const uint64_t*, kMaxStreams> start{};
  std::array<size_t, kMaxStreams> pages{};
  for (int s = 0; s < streams; ++s) {
    const size_t b = first + count * static_cast<size_t>(s) / static_cast<size_t>(streams);
    const size_t e = first + count * static_cast<size_t>(s + 1) / static_cast<size_t>(streams);
    start[static_cast<size_t>(s)] = buffer + b * kPageWords;
    pages[static_cast<size_t>(s)] = e - b;
  }
  const size_t common = *std::min_element(pages.begin(), pages.begin() + streams);
  uint64_t sum = reader(start.data(), streams, common * kStepsPerPage);
  for (int s = 0; s < streams; ++s) {
    const size_t extra = pages[static_cast<size_t>(s)] - common;
    if (extra == 0) continue;
    const uint64_t* tail = start[static_cast<size_t>(s)] + common * kPageWords;
    sum += reader(&tail, 1, extra * kStepsPerPage);
  }
  return sum;
}

// Pins the calling thread to the index-th CPU it may run on, for the life of the object, and then
// restores its affinity (the pool's threads go back to floating). Does nothing where there are
// fewer allowed CPUs than threads, or off Linux.
class PinScope {
 public:
  PinScope(bool enabled, int index, int n_threads) {
#if defined(__linux__)
    if (!enabled) return;
    if (pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) != 0) return;
    if (CPU_COUNT(&saved_) < n_threads) return;
    int seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &saved_)) continue;
      if (seen++ != index) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pinned_ = pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
      break;
    }
#else
    (void)enabled;
    (void)index;
    (void)n_threads;
#endif
  }
  ~PinScope() {
#if defined(__linux__)
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
#endif
  }
  PinScope(const PinScope&) = delete;
  PinScope& operator=(const PinScope&) = delete;

 private:
#if defined(__linux__)
  cpu_set_t saved_{};
#endif
  bool pinned_ = false;
};

// Parses sysfs cache sizes such as "307200K" or "32M".
uint64_t parse_cache_size(const std::string& text) {
  size_t pos = 0;
  uint64_t value = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    value = value * 10 + static_cast<uint64_t>(text[pos++] - '0');
  }
  if (pos < text.size()) {
    if (text[pos] == 'K') value <<= 10;
    if (text[pos] == 'M') value <<= 20;
    if (text[pos] == 'G') value <<= 30;
  }
  return value;
}

std::string format_mib(uint64_t bytes) {
  return std::to_string((bytes + (uint64_t{1} << 19)) >> 20) + " MiB";
}

}  // namespace

bool read_isa_supported(ReadIsa isa) {
  switch (isa) {
    case ReadIsa::kAuto:
    case ReadIsa::kPortable:
      return true;
#if defined(PARETO_BW_X86)
    case ReadIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case ReadIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
#else
    default:
      return false;
#endif
  }
  return false;
}

ReadIsa best_read_isa() {
  if (read_isa_supported(ReadIsa::kAvx512)) return ReadIsa::kAvx512;
  if (read_isa_supported(ReadIsa::kAvx2)) return ReadIsa::kAvx2;
  return ReadIsa::kPortable;
}

std::string_view read_isa_name(ReadIsa isa) {
  switch (isa) {
    case ReadIsa::kAuto:
      return "auto";
    case ReadIsa::kPortable:
      return "64-bit";
    case ReadIsa::kAvx2:
      return "AVX2";
    case ReadIsa::kAvx512:
      return "AVX-512";
  }
  return "?";
}

uint64_t last_level_cache_bytes() {
  uint64_t best = 0;
  int best_level = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_file(dir + "/level");
    std::ifstream size_file(dir + "/size");
    int level = 0;
    std::string size;
    if (!(level_file >> level) || !(size_file >> size)) continue;
    if (level >= best_level) {
      best_level = level;
      best = parse_cache_size(size);
    }
  }
  return best;
}

std::string describe(const BandwidthResult& r) {
  std::string out = std::string(read_isa_name(r.isa)) + " loads, " + std::to_string(r.streams) +
                    " streams/thread, " + std::to_string(r.threads) + " threads, " +
                    format_mib(r.buffer_bytes) + " buffer";
  if (r.l3_bytes > 0) out += ", LLC " + format_mib(r.l3_bytes);
  return out;
}

BandwidthProbe::BandwidthProbe(ThreadPool& pool, const BandwidthOptions& options)
    : pool_(pool), options_(options) {
  PARETO_CHECK(options.streams >= 0 && options.streams <= kMaxStreams);
  PARETO_CHECK(read_isa_supported(options.isa));
  isa_ = options.isa == ReadIsa::kAuto ? best_read_isa() : options.isa;
  n_pages_ = std::max<size_t>((options.buffer_bytes + kPageBytes - 1) / kPageBytes, 1);
  const size_t bytes = n_pages_ * kPageBytes;
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  buffer_ = static_cast<uint64_t*>(std::aligned_alloc(kHugePage, rounded));
  PARETO_CHECK(buffer_ != nullptr);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(buffer_, rounded, MADV_HUGEPAGE);  // a hint: without THP the probe still works, slower
#endif
  // First touch by slice, so each page is faulted in by a thread that will read it.
  const int n_threads = pool.size();
  pool.parallel_for(static_cast<size_t>(n_threads), [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) {
      const size_t first = n_pages_ * i / static_cast<size_t>(n_threads);
      const size_t last = n_pages_ * (i + 1) / static_cast<size_t>(n_threads);
      for (size_t w = first * kPageWords; w < last * kPageWords; ++w) {
        buffer_[w] = w * 0x9e3779b97f4a7c15ull;
      }
    }
  });
}

BandwidthProbe::~BandwidthProbe() {
  std::free(buffer_);
}

size_t BandwidthProbe::buffer_bytes() const {
  return n_pages_ * kPageBytes;
}

double BandwidthProbe::pass(int streams, uint64_t* checksum) {
  PARETO_CHECK(streams >= 1 && streams <= kMaxStreams);
  const Reader reader = reader_for(isa_);
  const int n_threads = pool_.size();
  const size_t chunk_pages = options_.chunk_bytes / kPageBytes;
  const size_t n_chunks = chunk_pages == 0 ? 0 : (n_pages_ + chunk_pages - 1) / chunk_pages;
  std::atomic<uint64_t> sum{0};
  std::atomic<size_t> next_chunk{0};
  const auto start = std::chrono::steady_clock::now();
  pool_.parallel_for(static_cast<size_t>(n_threads), [&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) {
      const PinScope pin(options_.pin_threads, static_cast<int>(i), n_threads);
      uint64_t part = 0;
      if (chunk_pages == 0) {
        const size_t first = n_pages_ * i / static_cast<size_t>(n_threads);
        const size_t last = n_pages_ * (i + 1) / static_cast<size_t>(n_threads);
        part = read_pages(reader, buffer_, first, last - first, streams);
      } else {
        // Chunks claimed from a shared counter: a thread the OS holds back delays the pass by
        // one chunk, not by its whole share.
        for (size_t c = next_chunk.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
             c = next_chunk.fetch_add(1, std::memory_order_relaxed)) {
          const size_t first = c * chunk_pages;
          part +=
              read_pages(reader, buffer_, first, std::min(chunk_pages, n_pages_ - first), streams);
        }
      }
      sum.fetch_add(part, std::memory_order_relaxed);
    }
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (checksum != nullptr) *checksum = sum.load();
  return s > 0 ? static_cast<double>(buffer_bytes()) / s / 1e9 : 0;
}

BandwidthResult BandwidthProbe::measure() {
  // Stream counts tried when not fixed: decode reads a few to a few dozen rows at once.
  std::vector<int> candidates = {4, 8, 16};
  if (options_.streams > 0) candidates = {options_.streams};
  BandwidthResult r;
  r.buffer_bytes = buffer_bytes();
  r.threads = pool_.size();
  r.isa = isa_;
  r.l3_bytes = last_level_cache_bytes();
  // Repetitions outer, stream counts inner, so a noisy moment does not hit one count only.
  for (int rep = 0; rep < std::max(options_.repetitions, 1); ++rep) {
    for (const int streams : candidates) {
      const double gb_per_s = pass(streams, &r.checksum);
      if (gb_per_s > r.best_gb_per_s) {
        r.best_gb_per_s = gb_per_s;
        r.streams = streams;
      }
    }
  }
  return r;
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, const BandwidthOptions& options) {
  BandwidthProbe probe(pool, options);
  return probe.measure();
}

}  // namespace pareto::bench
