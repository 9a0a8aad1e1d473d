#include "base/thread_pool.h"

#include <atomic>
#include <chrono>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pareto {
namespace {

// Every index in [0, n) is visited exactly once, for sizes below, at and above the thread count.
TEST(ThreadPool, CoversEachIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{5}, size_t{7}, size_t{100}}) {
      std::vector<std::atomic<int>> visits(n);
      pool.parallel_for(n, [&](size_t begin, size_t end, int thread) {
        EXPECT_LT(begin, end);
        EXPECT_GE(thread, 0);
        EXPECT_LT(thread, threads);
        for (size_t i = begin; i < end; ++i) visits[i].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(visits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, ChunksAreContiguousAndDistinctPerThread) {
  ThreadPool pool(4);
  std::vector<std::pair<size_t, size_t>> ranges(4, {0, 0});
  std::vector<int> calls(4, 0);
  pool.parallel_for(10, [&](size_t begin, size_t end, int thread) {
    ranges[static_cast<size_t>(thread)] = {begin, end};
    ++calls[static_cast<size_t>(thread)];
  });
  size_t covered = 0;
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(calls[static_cast<size_t>(t)], 1);
    covered += ranges[static_cast<size_t>(t)].second - ranges[static_cast<size_t>(t)].first;
  }
  EXPECT_EQ(covered, 10u);
}

TEST(ThreadPool, ManyConsecutiveJobsSumCorrectly) {
  ThreadPool pool(3);
  for (int round = 0; round < 200; ++round) {
    const size_t n = static_cast<size_t>(round % 17 + 1);
    std::vector<long> partial(3, 0);
    pool.parallel_for(n, [&](size_t begin, size_t end, int thread) {
      for (size_t i = begin; i < end; ++i)
        partial[static_cast<size_t>(thread)] += static_cast<long>(i);
    });
    const long total = std::accumulate(partial.begin(), partial.end(), 0L);
    ASSERT_EQ(total, static_cast<long>(n * (n - 1) / 2)) << "round " << round;
  }
}

TEST(ThreadPool, NonPositiveSizeMeansOneThread) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), 1);
  int calls = 0;
  pool.parallel_for(5, [&](size_t begin, size_t end, int) {
    EXPECT_EQ(begin, 0u);
    EXPECT_EQ(end, 5u);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
// Jobs separated by pauses longer than the spin make workers sleep on the condition variable;
// back-to-back jobs hand over while they spin. Both paths must run every chunk exactly once.
TEST(ThreadPool, WakesSleepingWorkersAndSpinningWorkersAlike) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  int64_t expected = 0;
  for (int job = 0; job < 40; ++job) {
    if (job % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const size_t n = 7 + static_cast<size_t>(job);
    pool.parallel_for(n, [&](size_t begin, size_t end, int) {
      for (size_t i = begin; i < end; ++i) total += static_cast<int64_t>(i);
    });
    expected += static_cast<int64_t>(n * (n - 1) / 2);
    ASSERT_EQ(total.load(), expected) << "job " << job;
  }
}

}  // namespace pareto

namespace pareto {
namespace {

// Dynamic chunks: every index exactly once, each call at most `grain` items, for grains below, at
// and above n, and thread counts around the chunk count.
TEST(ThreadPool, DynamicChunksCoverEachIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{64}, size_t{1000}}) {
      for (size_t grain : {size_t{0}, size_t{1}, size_t{3}, size_t{16}, size_t{5000}}) {
        std::vector<std::atomic<int>> visits(n);
        std::atomic<int> bad_calls{0};
        pool.parallel_for_dynamic(n, grain, [&](size_t begin, size_t end, int thread) {
          if (begin >= end || end - begin > std::max<size_t>(grain, 1) || thread < 0 ||
              thread >= threads) {
            // One thread, or one chunk's worth: a single call over everything.
            if (!((threads == 1 || grain >= n) && begin == 0 && end == n)) bad_calls.fetch_add(1);
          }
          for (size_t i = begin; i < end; ++i) visits[i].fetch_add(1);
        });
        EXPECT_EQ(bad_calls.load(), 0) << "threads=" << threads << " n=" << n << " grain=" << grain;
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(visits[i].load(), 1) << "threads=" << threads << " n=" << n << " i=" << i;
        }
      }
    }
  }
}

// Static and dynamic jobs interleave on one pool without losing or repeating work.
TEST(ThreadPool, StaticAndDynamicJobsInterleave) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  int64_t expected = 0;
  for (int job = 0; job < 100; ++job) {
    const size_t n = 5 + static_cast<size_t>(job % 23);
    const auto add = [&](size_t begin, size_t end, int) {
      for (size_t i = begin; i < end; ++i) total += static_cast<int64_t>(i);
    };
    if (job % 2 == 0) {
      pool.parallel_for(n, add);
    } else {
      pool.parallel_for_dynamic(n, 2, add);
    }
    expected += static_cast<int64_t>(n * (n - 1) / 2);
    ASSERT_EQ(total.load(), expected) << "job " << job;
  }
}

}  // namespace
}  // namespace pareto
