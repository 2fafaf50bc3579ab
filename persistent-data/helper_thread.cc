// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/helper_thread.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

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

void run_on_helper(std::function<void()> fn, unsigned lane) {
  static Helper helpers[kHelperLanes];
  helpers[lane % kHelperLanes].push(std::move(fn));
}

}  // namespace thinmeta::pdata
