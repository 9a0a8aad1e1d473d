// The bandwidth probe: every reader (AVX-512, AVX2, portable) with any stream count and thread
// count reads each 64-bit word of the buffer exactly once (checked through the word sum), and the
// report fields are filled. No timing assertions beyond "positive".
#include "bench/bandwidth.h"

#include <vector>

#include <gtest/gtest.h>

namespace pareto::bench {
namespace {

// The probe fills word w with w * 0x9e3779b97f4a7c15; their sum mod 2^64.
uint64_t expected_checksum(size_t bytes) {
  uint64_t sum = 0;
  for (uint64_t w = 0; w < bytes / sizeof(uint64_t); ++w) sum += w * 0x9e3779b97f4a7c15ull;
  return sum;
}

TEST(Bandwidth, ReportsPositiveRateOverTheWholeBuffer) {
  ThreadPool pool(2);
  const BandwidthResult r = measure_read_bandwidth(pool, BandwidthOptions{4 << 20, 2});
  EXPECT_EQ(r.buffer_bytes, size_t{4} << 20);
  EXPECT_EQ(r.threads, 2);
  EXPECT_GT(r.best_gb_per_s, 0.0);
  EXPECT_EQ(r.isa, best_read_isa());
  EXPECT_TRUE(r.streams == 4 || r.streams == 8 || r.streams == 16) << r.streams;
  EXPECT_EQ(r.checksum, expected_checksum(r.buffer_bytes));
}

TEST(Bandwidth, ProbeKeepsItsBufferForSinglePasses) {
  ThreadPool pool(2);
  BandwidthProbe probe(pool, BandwidthOptions{(size_t{2} << 20) + 4096, 1});
  EXPECT_EQ(probe.buffer_bytes(), (size_t{2} << 20) + 4096);
  const BandwidthResult r = probe.measure();
  EXPECT_EQ(r.checksum, expected_checksum(probe.buffer_bytes()));
  for (const int streams : {1, 5, 16}) {  // passes after measure() read the same words again
    uint64_t checksum = 0;
    EXPECT_GT(probe.pass(streams, &checksum), 0.0);
    EXPECT_EQ(checksum, expected_checksum(probe.buffer_bytes())) << streams;
  }
}

TEST(Bandwidth, EveryReaderReadsEveryWordOnce) {
  // Odd sizes: a page count that splits unevenly over threads and streams, and a request that is
  // not a whole number of pages (rounded up to one).
  const size_t sizes[] = {4096, (size_t{1} << 20) + 5 * 4096 + 100, size_t{3} << 20};
  for (const ReadIsa isa : {ReadIsa::kPortable, ReadIsa::kAvx2, ReadIsa::kAvx512}) {
    if (!read_isa_supported(isa)) continue;
    for (const int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (const size_t bytes : sizes) {
        for (const int streams : {1, 3, 8, 16}) {
          // Chunks claimed dynamically (two sizes, one of them odd) and fixed shares.
          for (const size_t chunk : {size_t{0}, size_t{3} * 4096, size_t{2} << 20}) {
            BandwidthOptions options;
            options.chunk_bytes = chunk;
            options.buffer_bytes = bytes;
            options.repetitions = 1;
            options.isa = isa;
            options.streams = streams;
            options.pin_threads = threads == 2;  // both ways
            const BandwidthResult r = measure_read_bandwidth(pool, options);
            const size_t pages = (bytes + 4095) / 4096;
            SCOPED_TRACE(describe(r));
            EXPECT_EQ(r.buffer_bytes, pages * 4096);
            EXPECT_EQ(r.isa, isa);
            EXPECT_EQ(r.streams, streams);
            EXPECT_EQ(r.threads, threads);
            EXPECT_EQ(r.checksum, expected_checksum(r.buffer_bytes));
          }
        }
      }
    }
  }
}

TEST(Bandwidth, DescribesTheReader) {
  BandwidthResult r;
  r.isa = ReadIsa::kAvx2;
  r.streams = 8;
  r.threads = 2;
  r.buffer_bytes = size_t{1} << 30;
  r.l3_bytes = size_t{300} << 20;
  EXPECT_EQ(describe(r), "AVX2 loads, 8 streams/thread, 2 threads, 1024 MiB buffer, LLC 300 MiB");
  r.l3_bytes = 0;
  EXPECT_EQ(describe(r), "AVX2 loads, 8 streams/thread, 2 threads, 1024 MiB buffer");
  EXPECT_TRUE(read_isa_supported(ReadIsa::kPortable));
  EXPECT_TRUE(read_isa_supported(best_read_isa()));
}

}  // namespace
}  // namespace pareto::bench
