// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/uring_engine.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "persistent-data/io/io_plan.h"

namespace thinmeta::pdata {
namespace {

// One ring with its mappings: one batch at a time uses it.
class Ring {
 public:
  Ring(int ring, const io_uring_params& p) : ring_(ring), depth_(p.sq_entries) {}
  ~Ring() {
    if (sq_ptr_ != MAP_FAILED) ::munmap(sq_ptr_, sq_size_);
    if (cq_ptr_ != MAP_FAILED && cq_ptr_ != sq_ptr_) ::munmap(cq_ptr_, cq_size_);
    if (sqes_ != MAP_FAILED) ::munmap(sqes_, sqes_size_);
    ::close(ring_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // A new ring of `depth` entries, or nullptr if the kernel refuses one.
  static std::unique_ptr<Ring> create(unsigned depth) {
    io_uring_params p;
    std::memset(&p, 0, sizeof(p));
    int fd = static_cast<int>(::syscall(__NR_io_uring_setup, depth, &p));
    if (fd < 0) return nullptr;
    auto r = std::make_unique<Ring>(fd, p);
    if (!r->map(p)) return nullptr;
    return r;
  }

  std::mutex mu;

  // Keeps up to depth_ requests in flight until all are done. Short transfers are errors (EIO).
  void run(int fd, IoPlan& plan, std::uint8_t* bufs, bool write) {
    std::vector<IoRequest>& reqs = plan.reqs;
    std::size_t next = 0, in_flight = 0;  // in_flight: taken by the kernel, not completed
    unsigned unsubmitted = 0;              // in the submission ring, not taken yet
    while (next < reqs.size() || in_flight || unsubmitted) {
      unsigned tail = *sq_tail_;
      while (next < reqs.size() && in_flight + unsubmitted < depth_) {
        IoRequest& r = reqs[next++];
        unsigned idx = tail & sq_mask_;
        io_uring_sqe& e = static_cast<io_uring_sqe*>(sqes_)[idx];
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
      } else if (errno != EINTR && errno != EAGAIN && errno != EBUSY) {
        // Nothing was taken: withdraw the queued entries and fail their requests.
        int e = errno;
        unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
        for (unsigned t = head; t != tail; ++t)
          reinterpret_cast<IoRequest*>(static_cast<io_uring_sqe*>(sqes_)[t & sq_mask_].user_data)->err = e;
        __atomic_store_n(sq_tail_, head, __ATOMIC_RELEASE);
        unsubmitted = 0;
        for (std::size_t k = next; k < reqs.size(); ++k) reqs[k].err = e;
        next = reqs.size();
        while (in_flight) {  // the buffers of requests in flight are the caller's
          if (enter(0, 1) < 0 && errno != EINTR) break;
          reap(in_flight);
        }
        return;
      }
      reap(in_flight);
    }
  }

 private:
  bool map(const io_uring_params& p) {
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

  int enter(unsigned to_submit, unsigned min_complete) {
    return static_cast<int>(::syscall(__NR_io_uring_enter, ring_, to_submit, min_complete,
                                      IORING_ENTER_GETEVENTS, nullptr, 0));
  }

  void reap(std::size_t& in_flight) {
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; ++head) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      IoRequest* r = reinterpret_cast<IoRequest*>(c.user_data);
      if (c.res < 0)
        r->err = -c.res;
      else if (static_cast<std::size_t>(c.res) != r->bytes())
        r->err = EIO;
      --in_flight;
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

  int ring_;
  unsigned depth_;
  void* sq_ptr_ = MAP_FAILED;
  void* cq_ptr_ = MAP_FAILED;
  void* sqes_ = MAP_FAILED;
  std::size_t sq_size_ = 0, cq_size_ = 0, sqes_size_ = 0;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

// Up to kLanes rings, the first made at open, the others when a batch finds every existing
// ring busy: concurrent batches (a walk's read-ahead, a second walk on another thread, a
// writer beside a reader) each keep their own requests in flight, which is what fills the
// disk's queue while one batch is being decoded or formed.
class UringEngine final : public PlannedEngine {
 public:
  static constexpr std::size_t kLanes = 3;

  UringEngine(int fd, std::uint64_t size, unsigned depth, std::unique_ptr<Ring> first)
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
    Ring* ring = nullptr;
    std::unique_lock<std::mutex> lock = acquire(ring);
    ring->run(fd(), plan, bufs, write);
  }

  // A free ring, a new one if all are busy and there is room, else the first (waiting).
  std::unique_lock<std::mutex> acquire(Ring*& ring) {
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
        if (auto r = Ring::create(depth_)) {
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
  std::unique_ptr<Ring> rings_[kLanes];
  std::atomic<std::size_t> nr_rings_{0};  // rings_[0, nr_rings_) exist; they never go away
  std::mutex grow_;
  bool grow_failed_ = false;  // the kernel refused a ring: make do with those there are
};

}  // namespace

std::unique_ptr<IoEngine> make_uring_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth) {
  auto ring = Ring::create(queue_depth);
  if (!ring) return nullptr;  // the caller keeps fd
  return std::make_unique<UringEngine>(fd, size_bytes, queue_depth, std::move(ring));
}

}  // namespace thinmeta::pdata
