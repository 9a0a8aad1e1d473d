// A small fixed-size thread pool. parallel_for splits [0, n) into contiguous chunks, one per
// worker, and returns when all are done. The calling thread takes part, so ThreadPool(1) spawns
// no threads and runs inline. Passed explicitly; never a global.
// Waiting is hybrid: a worker (and the caller waiting for the workers) spins briefly on an atomic
// before sleeping on a condition variable. A decode step issues dozens of parallel_for calls a few
// microseconds apart, too short for a sleep/wake round trip; a bounded spin keeps that fast
// without burning a core when the machine is oversubscribed (pure spinning, as ggml does,
// collapses then).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace pareto {

// A non-owning reference to a callable fn(begin, end, thread_index), valid while the callable
// lives (parallel_for returns before its argument dies). Unlike std::function it never
// allocates: a lambda with a large capture would otherwise cost a heap allocation per dispatch.
class RangeFn {
 public:
  template <class F>
  RangeFn(const F& f)  // NOLINT(google-explicit-constructor): lambdas convert implicitly
      : object_(&f), call_([](const void* o, size_t b, size_t e, int t) {
          (*static_cast<const F*>(o))(b, e, t);
        }) {}
  void operator()(size_t begin, size_t end, int thread) const {
    call_(object_, begin, end, thread);
  }

 private:
  const void* object_;
  void (*call_)(const void*, size_t, size_t, int);
};

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(begin, end, thread_index) for each non-empty chunk: one contiguous chunk per thread, the
  // same split every call (so thread t always touches the same part: first-touch placement).
  void parallel_for(size_t n, RangeFn fn);
  // The same, but threads take chunks of `grain` items (the last may be shorter) from a shared
  // counter until none is left, so a thread that is descheduled or slower (a busy machine, uneven
  // items) does not hold the others up. fn may run several times per thread; with one thread, or
  // when grain >= n, it runs once over [0, n).
  void parallel_for_dynamic(size_t n, size_t grain, RangeFn fn);

 private:
  void worker_loop(int index);
  void run(size_t n, size_t grain, RangeFn fn);
  // This thread's share of the current job: its static chunk (grain 0) or dynamic chunks.
  void run_share(int index);
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  // Written by the caller before generation_ is bumped (release), read by workers after they see
  // the new generation (acquire).
  const RangeFn* job_ = nullptr;
  size_t job_n_ = 0;
  size_t job_grain_ = 0;                 // 0: static chunks
  std::atomic<size_t> next_item_{0};     // dynamic chunks: first item not yet taken
  std::atomic<uint64_t> generation_{0};  // bumped under mu_, once per parallel_for
  std::atomic<int> pending_{0};          // workers still running the current job
  std::atomic<bool> stop_{false};        // set under mu_
  int sleepers_ = 0;                     // workers blocked on cv_start_ (guarded by mu_)
};

}  // namespace pareto
