#include "base/thread_pool.h"

#include <algorithm>
#include <thread>

#include "base/check.h"

namespace pareto {
namespace {

// Chunk `index` of `n` items split into `parts` contiguous, near-equal pieces.
std::pair<size_t, size_t> chunk_range(size_t n, int parts, int index) {
  const size_t p = static_cast<size_t>(parts);
  const size_t i = static_cast<size_t>(index);
  const size_t base = n / p;
  const size_t extra = n % p;
  const size_t begin = i * base + std::min(i, extra);
  const size_t end = begin + base + (i < extra ? 1 : 0);
  return {begin, end};
}

// Waits briefly for `ready`: a short pure spin (the common case: the other threads are a few
// microseconds away), then yields the core a few times so that a thread we wait for can run when
// the machine is oversubscribed (a pure spin there makes each hand-over cost a scheduler slice).
// False if `ready` never became true; the caller then sleeps on its condition variable.
template <class Ready>
bool spin_until(Ready ready) {
  for (int i = 0; i < 256; ++i) {
    if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  for (int i = 0; i < 64; ++i) {
    if (ready()) return true;
    std::this_thread::yield();
  }
  return ready();
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  // Worker i runs chunk i; the calling thread runs chunk 0.
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(size_t n, RangeFn fn) {
  run(n, 0, fn);
}

void ThreadPool::parallel_for_dynamic(size_t n, size_t grain, RangeFn fn) {
  run(n, std::max<size_t>(grain, 1), fn);
}

void ThreadPool::run_share(int index) {
  if (job_grain_ == 0) {
    const auto [begin, end] = chunk_range(job_n_, n_threads_, index);
    if (begin < end) (*job_)(begin, end, index);
    return;
  }
  for (;;) {
    const size_t begin = next_item_.fetch_add(job_grain_, std::memory_order_relaxed);
    if (begin >= job_n_) return;
    (*job_)(begin, std::min(job_n_, begin + job_grain_), index);
  }
}

void ThreadPool::run(size_t n, size_t grain, RangeFn fn) {
  if (n == 0) return;
  if (n_threads_ == 1 || n == 1 || (grain > 0 && grain >= n)) {
    fn(0, n, 0);
    return;
  }
  PARETO_CHECK_MSG(job_ == nullptr, "ThreadPool::parallel_for is not reentrant");
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  next_item_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) cv_start_.notify_all();
  run_share(0);
  if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen_generation = 0;
  const auto has_work = [&] {
    return stop_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen_generation;
  };
  for (;;) {
    if (!spin_until(has_work)) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleepers_;
      cv_start_.wait(lock, has_work);
      --sleepers_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen_generation = generation_.load(std::memory_order_acquire);
    run_share(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

}  // namespace pareto
