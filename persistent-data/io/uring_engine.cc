// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/uring_engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "persistent-data/io/io_plan.h"
#include "persistent-data/io/uring_ring.h"

namespace thinmeta::pdata {
namespace {

// Up to kLanes rings, the first made at open, the others when a batch finds every existing
// ring busy: concurrent batches (a walk's read-ahead, a second walk on another thread, a
// writer beside a reader) each keep their own requests in flight, which is what fills the
// disk's queue while one batch is being decoded or formed.
class UringEngine final : public PlannedEngine {
 public:
  static constexpr std::size_t kLanes = 3;

  UringEngine(int fd, std::uint64_t size, unsigned depth, std::unique_ptr<UringRing> first)
      : PlannedEngine(fd, size), depth_(depth) {
    rings_[0] = std::move(first);
    nr_rings_.store(1);
  }
 private:
  void run(IoPlan& plan, std::uint8_t* bufs, bool write) override {
    if (plan.reqs.size() < 2) {  // a lone request: pread/pwrite
      for (IoRequest& r : plan.reqs) run_request_sync(fd(), r, bufs, write, plan);
      return;
    }
    UringRing* ring = nullptr;
    std::unique_lock<std::mutex> lock = acquire(ring);
    ring->run(fd(), plan, bufs, write);
  }

  // A free ring, a new one if all are busy and there is room, else the first (waiting).
  std::unique_lock<std::mutex> acquire(UringRing*& ring) {
    std::size_t n = nr_rings_.load(std::memory_order_acquire);
    for (std::size_t k = 0; k < n; ++k) {
      std::unique_lock<std::mutex> lock(rings_[k]->mu, std::try_to_lock);
      if (lock.owns_lock()) {
        ring = rings_[k].get();
        return lock;
      }
    }
    {
      std::lock_guard<std::mutex> g(grow_);
      n = nr_rings_.load(std::memory_order_relaxed);
      if (n < kLanes && !grow_failed_) {
        if (auto r = UringRing::create(depth_)) {
          rings_[n] = std::move(r);
          std::unique_lock<std::mutex> lock(rings_[n]->mu);
          ring = rings_[n].get();
          nr_rings_.store(n + 1, std::memory_order_release);
          return lock;
        }
        grow_failed_ = true;
      }
    }
    ring = rings_[0].get();
    return std::unique_lock<std::mutex>(ring->mu);
  }

  unsigned depth_;
  std::unique_ptr<UringRing> rings_[kLanes];
  std::atomic<std::size_t> nr_rings_{0};  // rings_[0, nr_rings_) exist; they never go away
  std::mutex grow_;
  bool grow_failed_ = false;  // the kernel refused a ring: make do with those there are
};

}  // namespace

std::unique_ptr<IoEngine> make_uring_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth) {
  auto ring = UringRing::create(queue_depth);
  if (!ring) return nullptr;  // the caller keeps fd
  return std::make_unique<UringEngine>(fd, size_bytes, queue_depth, std::move(ring));
}

}  // namespace thinmeta::pdata
