// SPDX-License-Identifier: GPL-3.0-or-later
// One io_uring (raw system calls, no liburing) with its mappings. Two ways to use it, one user
// at a time (the caller holds `mu` when several threads share rings):
//  - run(): a whole IoPlan of block requests kept in flight until all are done (the engine);
//  - queue() / enter() / reap(): single operations submitted and completed one by one, in any
//    order (AsyncQueue, the data plane's streams of large requests).
#pragma once

#include <linux/io_uring.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "persistent-data/io/io_plan.h"

namespace thinmeta::pdata {

class UringRing {
 public:
  UringRing(int ring, const io_uring_params& p);
  ~UringRing();
  UringRing(const UringRing&) = delete;
  UringRing& operator=(const UringRing&) = delete;

  // A new ring of `depth` entries, or nullptr if the kernel refuses one (old kernel, seccomp,
  // kernel.io_uring_disabled).
  static std::unique_ptr<UringRing> create(unsigned depth);

  std::mutex mu;
  unsigned depth() const { return depth_; }

  // Keeps up to depth() requests in flight until all are done. Short transfers are errors (EIO).
  void run(int fd, IoPlan& plan, std::uint8_t* bufs, bool write);

  // Puts one operation in the submission ring (not yet submitted); false if the ring is full.
  // `e` is copied; user_data comes back with its completion.
  bool queue(const io_uring_sqe& e);
  // Submits what queue() put in the ring and waits for `min_complete` completions. Returns the
  // number submitted, or -errno (EINTR, EAGAIN, EBUSY: try again).
  int enter(unsigned to_submit, unsigned min_complete);
  // Takes back what queue() put in the ring and the kernel has not taken; returns how many.
  unsigned withdraw();
  // Each completion ready: f(user_data, res).
  template <typename F>
  void reap(F&& f) {
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      f(c.user_data, c.res);
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

 private:
  bool map(const io_uring_params& p);
  io_uring_sqe* sqes() const { return static_cast<io_uring_sqe*>(sqes_); }

  int ring_;
  unsigned depth_;
  void* sq_ptr_;
  void* cq_ptr_;
  void* sqes_;
  std::size_t sq_size_ = 0, cq_size_ = 0, sqes_size_ = 0;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

}  // namespace thinmeta::pdata
