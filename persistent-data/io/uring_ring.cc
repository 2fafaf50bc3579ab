// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/uring_ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace thinmeta::pdata {

UringRing::UringRing(int ring, const io_uring_params& p)
    : ring_(ring), depth_(p.sq_entries), sq_ptr_(MAP_FAILED), cq_ptr_(MAP_FAILED),
      sqes_(MAP_FAILED) {}

UringRing::~UringRing() {
  if (sq_ptr_ != MAP_FAILED) ::munmap(sq_ptr_, sq_size_);
  if (cq_ptr_ != MAP_FAILED && cq_ptr_ != sq_ptr_) ::munmap(cq_ptr_, cq_size_);
  if (sqes_ != MAP_FAILED) ::munmap(sqes_, sqes_size_);
  ::close(ring_);
}

std::unique_ptr<UringRing> UringRing::create(unsigned depth) {
  io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  int fd = static_cast<int>(::syscall(__NR_io_uring_setup, depth, &p));
  if (fd < 0) return nullptr;
  auto r = std::make_unique<UringRing>(fd, p);
  if (!r->map(p)) return nullptr;
  return r;
}

void UringRing::run(int fd, IoPlan& plan, std::uint8_t* bufs, bool write) {
  std::vector<IoRequest>& reqs = plan.reqs;
  std::size_t next = 0, in_flight = 0;  // in_flight: taken by the kernel, not completed
  unsigned unsubmitted = 0;              // in the submission ring, not taken yet
  auto reap_plan = [&] {
    reap([&](std::uint64_t user_data, std::int32_t res) {
      IoRequest* r = reinterpret_cast<IoRequest*>(user_data);
      if (res < 0)
        r->err = -res;
      else if (static_cast<std::size_t>(res) != r->bytes())
        r->err = EIO;
      --in_flight;
    });
  };
  while (next < reqs.size() || in_flight || unsubmitted) {
    unsigned tail = *sq_tail_;
    while (next < reqs.size() && in_flight + unsubmitted < depth_) {
      IoRequest& r = reqs[next++];
      unsigned idx = tail & sq_mask_;
      io_uring_sqe& e = sqes()[idx];
      std::memset(&e, 0, sizeof(e));
      e.fd = fd;
      if (r.iov_n) {
        e.opcode = IORING_OP_READV;
        e.addr = reinterpret_cast<std::uint64_t>(plan.iovs.data() + r.iov_first);
        e.len = r.iov_n;
      } else {
        e.opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
        e.addr = reinterpret_cast<std::uint64_t>(bufs + r.first * kBlockSize);
        e.len = static_cast<std::uint32_t>(r.nr * kBlockSize);
      }
      e.off = r.block * kBlockSize;
      e.user_data = reinterpret_cast<std::uint64_t>(&r);
      sq_array_[idx] = idx;
      ++tail;
      ++unsubmitted;
    }
    __atomic_store_n(sq_tail_, tail, __ATOMIC_RELEASE);
    if (!in_flight && !unsubmitted) break;
    int n = enter(unsubmitted, 1);  // submits, then waits for one completion
    if (n >= 0) {
      in_flight += static_cast<unsigned>(n);
      unsubmitted -= static_cast<unsigned>(n);
    } else if (-n != EINTR && -n != EAGAIN && -n != EBUSY) {
      // Nothing was taken: withdraw the queued entries and fail their requests.
      int e = -n;
      unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
      for (unsigned t = head; t != tail; ++t)
        reinterpret_cast<IoRequest*>(sqes()[t & sq_mask_].user_data)->err = e;
      __atomic_store_n(sq_tail_, head, __ATOMIC_RELEASE);
      unsubmitted = 0;
      for (std::size_t k = next; k < reqs.size(); ++k) reqs[k].err = e;
      next = reqs.size();
      while (in_flight) {  // the buffers of requests in flight are the caller's
        if (enter(0, 1) < 0 && errno != EINTR) break;
        reap_plan();
      }
      return;
    }
    reap_plan();
  }
}

bool UringRing::queue(const io_uring_sqe& e) {
  unsigned tail = *sq_tail_;
  unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  if (tail - head >= depth_) return false;
  unsigned idx = tail & sq_mask_;
  sqes()[idx] = e;
  sq_array_[idx] = idx;
  __atomic_store_n(sq_tail_, tail + 1, __ATOMIC_RELEASE);
  return true;
}

unsigned UringRing::withdraw() {
  unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  unsigned tail = *sq_tail_;
  __atomic_store_n(sq_tail_, head, __ATOMIC_RELEASE);
  return tail - head;
}

int UringRing::enter(unsigned to_submit, unsigned min_complete) {
  int n = static_cast<int>(::syscall(__NR_io_uring_enter, ring_, to_submit, min_complete,
                                     IORING_ENTER_GETEVENTS, nullptr, 0));
  return n < 0 ? -errno : n;
}

bool UringRing::map(const io_uring_params& p) {
  sq_size_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cq_size_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  bool single = p.features & IORING_FEAT_SINGLE_MMAP;
  if (single) sq_size_ = cq_size_ = std::max(sq_size_, cq_size_);
  sq_ptr_ = ::mmap(nullptr, sq_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_,
                   IORING_OFF_SQ_RING);
  if (sq_ptr_ == MAP_FAILED) return false;
  cq_ptr_ = single ? sq_ptr_
                   : ::mmap(nullptr, cq_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                            ring_, IORING_OFF_CQ_RING);
  if (cq_ptr_ == MAP_FAILED) return false;
  sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
  sqes_ = ::mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_,
                 IORING_OFF_SQES);
  if (sqes_ == MAP_FAILED) return false;
  auto sq = static_cast<char*>(sq_ptr_);
  auto cq = static_cast<char*>(cq_ptr_);
  sq_head_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
  sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
  sq_mask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
  sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
  cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
  cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
  cq_mask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
  cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  return true;
}

}  // namespace thinmeta::pdata
