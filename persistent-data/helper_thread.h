// SPDX-License-Identifier: GPL-3.0-or-later
// Helper threads for the whole process (one per lane), started on first use: the walks read their next
// batch of blocks on it while the calling thread decodes the current one, and writers write a
// batch while the next one fills. std::async started a thread per batch (~600 thread starts
// in a 16-million-mapping check). Jobs run in submission order; a job must not wait for
// another job (none does: they are reads and writes).
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <utility>

namespace thinmeta::pdata {

// The result of a job on the helper thread. Like the future of std::async, it waits for the
// job when destroyed or replaced: a job never outlives the buffers it works on.
template <typename R>
class Pending {
 public:
  Pending() = default;
  explicit Pending(std::future<R> f) : f_(std::move(f)) {}
  Pending(Pending&&) = default;
  Pending& operator=(Pending&& o) {
    if (this != &o) {
      wait();
      f_ = std::move(o.f_);
    }
    return *this;
  }
  ~Pending() { wait(); }
  bool valid() const { return f_.valid(); }
  R get() { return f_.get(); }

 private:
  void wait() {
    if (f_.valid()) f_.wait();
  }
  std::future<R> f_;
};

// Helper threads: lane 0 serves the walks and writers; lane 1 lets a second, independent
// stream of reads (thin_delta's second cursor) keep its own request in flight. Each lane's
// thread starts on first use; jobs of one lane run in submission order.
inline constexpr unsigned kHelperLanes = 2;

// Queues fn for the helper thread of `lane`.
void run_on_helper(std::function<void()> fn, unsigned lane = 0);

// Threads that share decoding work (checksums, page-cache copies): $THINMETA_THREADS when it is
// a number from 1 to 64, else the machine's cores (at most 64). 1: everything runs where it
// ran before the pool existed (the caller or a helper lane), no pool thread is started.
unsigned worker_count();

// Runs fn(0) .. fn(n - 1) on the caller and up to worker_count() - 1 pool threads (started on
// first use) and returns once all have run. Calls with distinct indices run concurrently, in
// any order: fn writes only what its index owns. Must not be called from fn itself.
void run_parallel(std::size_t n, const std::function<void(std::size_t)>& fn);

struct ParallelJob;

// A run_parallel that does not wait: the pool threads start on fn(0) .. fn(n - 1) at once, and
// join() runs the indices none of them has claimed yet on the caller, then waits for the
// rest. A caller with work of its own (a walk visiting one batch while the next is read)
// keeps every core busy without a thread of its own waiting in between. Joins when destroyed
// or replaced: fn never outlives what it works on. With one worker nothing runs before join().
class ParallelTask {
 public:
  ParallelTask() = default;
  ParallelTask(std::size_t n, std::function<void(std::size_t)> fn);
  ParallelTask(ParallelTask&& o) noexcept : job_(std::move(o.job_)) {}
  ParallelTask& operator=(ParallelTask&& o) noexcept;
  ~ParallelTask() { join(); }
  bool valid() const { return job_ != nullptr; }
  void join();

 private:
  std::shared_ptr<ParallelJob> job_;
};

template <typename F>
auto on_helper(F fn, unsigned lane = 0) -> Pending<decltype(fn())> {
  using R = decltype(fn());
  auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
  Pending<R> p(task->get_future());
  run_on_helper([task] { (*task)(); }, lane);
  return p;
}

}  // namespace thinmeta::pdata
