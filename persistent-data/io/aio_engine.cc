// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/aio_engine.h"

#include <libaio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "persistent-data/io/io_plan.h"

namespace thinmeta::pdata {
namespace {

class AioEngine final : public PlannedEngine {
 public:
  AioEngine(int fd, std::uint64_t size, unsigned qd) : PlannedEngine(fd, size), qd_(qd) {
    for (Lane& l : lanes_) {
      l.iocbs.resize(qd);
      l.events.resize(qd);
    }
  }
  ~AioEngine() override {
    for (Lane& l : lanes_)
      if (l.ctx) io_destroy(l.ctx);
  }
 private:
  // A kernel context with its iocbs and events: one batch at a time uses it. Several lanes
  // let threads (a walk and its read-ahead, a second walk, two cursors, a writer and a reader)
  // keep their batches in flight together, which about doubles what the disk delivers.
  struct Lane {
    std::mutex mu;
    io_context_t ctx = nullptr;
    std::vector<iocb> iocbs;
    std::vector<io_event> events;
    std::vector<iocb*> free;
  };

  std::unique_lock<std::mutex> acquire(Lane*& lane) {
    for (Lane& l : lanes_) {
      std::unique_lock<std::mutex> lock(l.mu, std::try_to_lock);
      if (lock.owns_lock()) {
        lane = &l;
        return lock;
      }
    }
    lane = &lanes_[0];
    return std::unique_lock<std::mutex>(lanes_[0].mu);
  }

  // Keeps up to qd_ requests in flight until all are done. Each in-flight request owns an
  // iocb slot from the lane's free list; a completion returns its slot. Short transfers are
  // errors (EIO).
  void run(IoPlan& plan, std::uint8_t* bufs, bool write) override {
    std::vector<IoRequest>& reqs = plan.reqs;
    // A kernel context is created on the first batch of two or more requests: a lone
    // request is as fast with pread/pwrite on the O_DIRECT descriptor (and needs no lane), and
    // a process that never had a context does not wait for its teardown (an RCU grace period,
    // tens of ms) at exit, which keeps small runs starting and exiting in a few ms.
    if (reqs.size() < 2) {
      for (IoRequest& r : reqs) run_request_sync(fd(), r, bufs, write, plan);
      return;
    }
    Lane* lane = nullptr;
    auto lock = acquire(lane);
    if (!lane->ctx && io_setup(static_cast<int>(qd_), &lane->ctx) != 0) {
      lane->ctx = nullptr;
      for (IoRequest& r : reqs) run_request_sync(fd(), r, bufs, write, plan);
      return;
    }
    io_context_t ctx = lane->ctx;
    std::vector<iocb*>& idle = lane->free;
    std::vector<io_event>& events = lane->events;
    idle.clear();
    for (iocb& cb : lane->iocbs) idle.push_back(&cb);
    std::size_t next = 0, done = 0;
    std::vector<iocb*> batch;
    batch.reserve(qd_);
    while (done < reqs.size()) {
      batch.clear();
      while (next < reqs.size() && !idle.empty()) {
        IoRequest& r = reqs[next++];
        iocb* cb = idle.back();
        idle.pop_back();
        std::uint8_t* p = bufs + r.first * kBlockSize;
        auto off = static_cast<long long>(r.block * kBlockSize);
        if (write)
          io_prep_pwrite(cb, fd(), p, r.nr * kBlockSize, off);
        else if (r.iov_n)
          io_prep_preadv(cb, fd(), plan.iovs.data() + r.iov_first, static_cast<int>(r.iov_n), off);
        else
          io_prep_pread(cb, fd(), p, r.nr * kBlockSize, off);
        cb->data = &r;
        batch.push_back(cb);
      }
      std::size_t submitted = submit(ctx, batch);
      for (std::size_t k = submitted; k < batch.size(); ++k) {
        // Refused by the kernel: fail the request and give its slot back.
        static_cast<IoRequest*>(batch[k]->data)->err = EIO;
        idle.push_back(batch[k]);
        ++done;
      }
      if (idle.size() == lane->iocbs.size()) continue;  // nothing in flight
      int got;
      do {
        got = io_getevents(ctx, 1, static_cast<long>(events.size()), events.data(), nullptr);
      } while (got == -EINTR);
      if (got < 0) {  // should not happen: fail what is left rather than spin
        for (std::size_t k = 0; k < reqs.size(); ++k)
          if (!reqs[k].err) reqs[k].err = -got;
        return;
      }
      for (int k = 0; k < got; ++k) {
        IoRequest* r = static_cast<IoRequest*>(events[k].data);
        auto res = static_cast<long>(events[k].res);
        if (res < 0)
          r->err = static_cast<int>(-res);
        else if (static_cast<std::size_t>(res) != r->bytes())
          r->err = EIO;
        idle.push_back(events[k].obj);
        ++done;
      }
    }
  }

  static std::size_t submit(io_context_t ctx, std::vector<iocb*>& batch) {
    std::size_t off = 0;
    while (off < batch.size()) {
      int n = io_submit(ctx, static_cast<long>(batch.size() - off), batch.data() + off);
      if (n == -EINTR || n == -EAGAIN) continue;
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    return off;
  }

  unsigned qd_;
  Lane lanes_[3];  // contexts are set up on first use: a lane is only made when needed
};

}  // namespace

std::unique_ptr<IoEngine> make_aio_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth) {
  return std::make_unique<AioEngine>(fd, size_bytes, queue_depth);
}

}  // namespace thinmeta::pdata
