// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/helper_thread.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace thinmeta::pdata {
namespace {

class Helper {
 public:
  ~Helper() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_one();
    if (t_.joinable()) t_.join();
  }
  void push(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(m_);
      if (!t_.joinable()) t_ = std::thread([this] { loop(); });
      q_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [this] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;  // stopping, nothing left
        fn = std::move(q_.front());
        q_.pop_front();
      }
      fn();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::thread t_;
};

}  // namespace

// One run_parallel call or ParallelTask: indices are claimed one at a time by whoever runs it.
struct ParallelJob {
  const std::function<void(std::size_t)>* fn;
  std::function<void(std::size_t)> owned;  // a ParallelTask's fn (fn points at it)
  std::size_t n;
  std::atomic<std::size_t> next{0};
  std::size_t done = 0;  // under m
  std::mutex m;
  std::condition_variable cv;

  // Runs indices until none is left.
  void work() {
    std::size_t ran = 0;
    for (std::size_t i; (i = next.fetch_add(1)) < n; ++ran) (*fn)(i);
    if (!ran) return;
    std::lock_guard<std::mutex> l(m);
    done += ran;
    if (done == n) cv.notify_all();
  }
  // Runs what is left on the caller, then waits for the indices others are running.
  void join() {
    work();
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return done == n; });
  }
};

namespace {

class Pool {
 public:
  explicit Pool(unsigned threads) : want_(threads) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void run(std::size_t n, const std::function<void(std::size_t)>& fn) {
    auto job = std::make_shared<ParallelJob>();
    job->fn = &fn;
    job->n = n;
    submit(job);
    job->join();
  }
  // Hands job to up to n - 1 pool threads (one per index beyond the caller's).
  void submit(const std::shared_ptr<ParallelJob>& job) {
    std::size_t helpers = std::min<std::size_t>(want_, job->n - 1);
    if (!helpers) return;
    {
      std::lock_guard<std::mutex> l(m_);
      while (threads_.size() < helpers) threads_.emplace_back([this] { loop(); });
      for (std::size_t k = 0; k < helpers; ++k) q_.push_back(job);
    }
    if (helpers == 1)
      cv_.notify_one();
    else
      cv_.notify_all();
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<ParallelJob> job;
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [this] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;  // stopping, nothing left
        job = std::move(q_.front());
        q_.pop_front();
      }
      job->work();  // a job already finished by others just finds no index left
    }
  }
  std::size_t want_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<ParallelJob>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

Pool& pool();

}  // namespace

unsigned worker_count() {
  static const unsigned count = [] {
    if (const char* e = std::getenv("THINMETA_THREADS")) {
      char* end = nullptr;
      long v = std::strtol(e, &end, 10);
      if (end != e && *end == '\0' && v >= 1 && v <= 64) return static_cast<unsigned>(v);
    }
    return std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  }();
  return count;
}

namespace {

Pool& pool() {
  static Pool p(worker_count() - 1);
  return p;
}

}  // namespace

void run_parallel(std::size_t n, const std::function<void(std::size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || worker_count() == 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  pool().run(n, fn);
}

ParallelTask::ParallelTask(std::size_t n, std::function<void(std::size_t)> fn)
    : job_(std::make_shared<ParallelJob>()) {
  job_->owned = std::move(fn);
  job_->fn = &job_->owned;
  job_->n = n;
  if (n > 1 && worker_count() > 1) pool().submit(job_);
}

ParallelTask& ParallelTask::operator=(ParallelTask&& o) noexcept {
  if (this != &o) {
    join();
    job_ = std::move(o.job_);
  }
  return *this;
}

void ParallelTask::join() {
  if (!job_) return;
  job_->join();
  job_.reset();
}

void run_on_helper(std::function<void()> fn, unsigned lane) {
  static Helper helpers[kHelperLanes];
  helpers[lane % kHelperLanes].push(std::move(fn));
}

}  // namespace thinmeta::pdata
