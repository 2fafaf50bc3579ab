// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/aio_engine.h"

#include <libaio.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

namespace thinmeta::pdata {
namespace {

constexpr std::size_t kMaxRunBlocks = 64;  // 256 KiB per request at most
constexpr std::size_t kMaxGap = 8;         // blocks read and dropped to join two requests

class AioEngine final : public IoEngine {
 public:
  AioEngine(int fd, std::uint64_t size, unsigned qd)
      : fd_(fd), nr_(size / kBlockSize), qd_(qd), gap_scratch_(kMaxGap) {
    for (Lane& l : lanes_) {
      l.iocbs.resize(qd);
      l.events.resize(qd);
    }
  }
  ~AioEngine() override {
    for (Lane& l : lanes_)
      if (l.ctx) io_destroy(l.ctx);
    ::close(fd_);
  }
  BlockAddr nr_blocks() const override { return nr_; }

  // Nearby blocks (gaps of up to kMaxGap blocks) are read as one request, the gaps going to
  // a scratch buffer: a fragmented tree then costs a few large requests, not one per block.
  void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                 std::span<int> errs) override {
    std::vector<Req> reqs;
    reqs.reserve(addrs.size());
    std::vector<iovec> iovs;
    std::size_t i = 0;
    while (i < addrs.size()) {
      if (addrs[i] >= nr_) {
        errs[i] = EINVAL;
        ++i;
        continue;
      }
      std::size_t j = i + 1;
      bool gaps = false;
      while (j < addrs.size() && addrs[j] > addrs[j - 1] && addrs[j] < nr_ &&
             addrs[j] - addrs[j - 1] - 1 <= kMaxGap && addrs[j] - addrs[i] < kMaxRunBlocks) {
        gaps = gaps || addrs[j] != addrs[j - 1] + 1;
        ++j;
      }
      Req r{i, j - i, addrs[i], 0, j - i, 0, 0};
      if (gaps) {
        r.span = addrs[j - 1] - addrs[i] + 1;
        r.iov_first = static_cast<std::uint32_t>(iovs.size());
        for (std::size_t k = i; k < j; ++k) {
          if (k > i && addrs[k] == addrs[k - 1] + 1) {
            iovs.back().iov_len += kBlockSize;  // the caller's blocks k - 1 and k are adjacent
            continue;
          }
          if (k > i)
            iovs.push_back(iovec{gap_scratch_.data(), (addrs[k] - addrs[k - 1] - 1) * kBlockSize});
          iovs.push_back(iovec{bufs + k * kBlockSize, kBlockSize});
        }
        r.iov_n = static_cast<std::uint32_t>(iovs.size() - r.iov_first);
      }
      reqs.push_back(r);
      i = j;
    }
    run(reqs, bufs, /*write=*/false, iovs.data());
    for (const Req& r : reqs) {
      if (r.err && r.iov_n) {
        // Perhaps only a gap block is unreadable: read the wanted ones by themselves.
        for (std::size_t k = r.first; k < r.first + r.nr;) {
          std::size_t e = k + 1;
          while (e < r.first + r.nr && addrs[e] == addrs[e - 1] + 1) ++e;
          Req one{k, e - k, addrs[k], 0, e - k, 0, 0};
          run_sync(one, bufs, false, nullptr);
          for (std::size_t m = k; m < e; ++m) errs[m] = one.err;
          k = e;
        }
        continue;
      }
      for (std::size_t k = 0; k < r.nr; ++k) errs[r.first + k] = r.err;
    }
  }

  Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) override {
    std::vector<Req> reqs;
    reqs.reserve(addrs.size());
    std::size_t i = 0;
    while (i < addrs.size()) {
      if (addrs[i] >= nr_)
        return fail(Errc::kNoSpace, "write beyond the end of the metadata device (block " +
                                        std::to_string(addrs[i]) + ")");
      std::size_t j = i + 1;
      while (j < addrs.size() && addrs[j] == addrs[j - 1] + 1 && j - i < kMaxRunBlocks) {
        if (addrs[j] >= nr_) break;
        ++j;
      }
      reqs.push_back(Req{i, j - i, addrs[i], 0, j - i, 0, 0});
      i = j;
    }
    run(reqs, const_cast<std::uint8_t*>(bufs), /*write=*/true, nullptr);
    for (const Req& r : reqs)
      if (r.err)
        return fail(Errc::kIo, "write of metadata block " + std::to_string(r.block) +
                                   " failed: " + std::strerror(r.err));
    return {};
  }

  Result<> flush() override {
    if (::fsync(fd_) != 0 && errno != EINVAL)
      return fail(Errc::kIo, std::string("flush failed: ") + std::strerror(errno));
    return {};
  }

 private:
  struct Req {
    std::size_t first;  // index into the caller's arrays
    std::size_t nr;     // blocks
    BlockAddr block;
    int err;
    std::size_t span;   // device blocks the request covers (nr + gaps)
    std::uint32_t iov_first, iov_n;  // its iovecs when it has gaps (iov_n > 0)
  };

  // A kernel context with its iocbs and events: one batch at a time uses it. Two lanes let
  // two threads (a walk and its read-ahead, two cursors, a writer and a reader) keep their
  // batches in flight together, which about doubles what the disk delivers.
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
  void run(std::vector<Req>& reqs, std::uint8_t* bufs, bool write, const iovec* iovs) {
    // A kernel context is created on the first batch of two or more requests: a lone
    // request is as fast with pread/pwrite on the O_DIRECT descriptor (and needs no lane), and
    // a process that never had a context does not wait for its teardown (an RCU grace period,
    // tens of ms) at exit, which keeps small runs starting and exiting in a few ms.
    if (reqs.size() < 2) {
      for (Req& r : reqs) run_sync(r, bufs, write, iovs);
      return;
    }
    Lane* lane = nullptr;
    auto lock = acquire(lane);
    if (!lane->ctx && io_setup(static_cast<int>(qd_), &lane->ctx) != 0) {
      lane->ctx = nullptr;
      for (Req& r : reqs) run_sync(r, bufs, write, iovs);
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
        Req& r = reqs[next++];
        iocb* cb = idle.back();
        idle.pop_back();
        std::uint8_t* p = bufs + r.first * kBlockSize;
        auto off = static_cast<long long>(r.block * kBlockSize);
        if (write)
          io_prep_pwrite(cb, fd_, p, r.nr * kBlockSize, off);
        else if (r.iov_n)
          io_prep_preadv(cb, fd_, iovs + r.iov_first, static_cast<int>(r.iov_n), off);
        else
          io_prep_pread(cb, fd_, p, r.nr * kBlockSize, off);
        cb->data = &r;
        batch.push_back(cb);
      }
      std::size_t submitted = submit(ctx, batch);
      for (std::size_t k = submitted; k < batch.size(); ++k) {
        // Refused by the kernel: fail the request and give its slot back.
        static_cast<Req*>(batch[k]->data)->err = EIO;
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
        Req* r = static_cast<Req*>(events[k].data);
        auto res = static_cast<long>(events[k].res);
        if (res < 0)
          r->err = static_cast<int>(-res);
        else if (static_cast<std::size_t>(res) != r->span * kBlockSize)
          r->err = EIO;
        idle.push_back(events[k].obj);
        ++done;
      }
    }
  }

  void run_sync(Req& r, std::uint8_t* bufs, bool write, const iovec* iovs) {
    auto off = static_cast<off_t>(r.block * kBlockSize);
    if (r.iov_n) {  // a short read is an error here: the caller retries block by block
      ssize_t n;
      do {
        n = ::preadv(fd_, iovs + r.iov_first, static_cast<int>(r.iov_n), off);
      } while (n < 0 && errno == EINTR);
      if (n < 0) r.err = errno;
      else if (static_cast<std::size_t>(n) != r.span * kBlockSize) r.err = EIO;
      return;
    }
    std::uint8_t* p = bufs + r.first * kBlockSize;
    std::size_t len = r.nr * kBlockSize, got = 0;
    while (got < len) {
      ssize_t n = write ? ::pwrite(fd_, p + got, len - got, off + static_cast<off_t>(got))
                        : ::pread(fd_, p + got, len - got, off + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        r.err = n < 0 ? errno : EIO;
        return;
      }
      got += static_cast<std::size_t>(n);
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

  int fd_;
  BlockAddr nr_;
  unsigned qd_;
  Lane lanes_[2];
  AlignedBuffer gap_scratch_;  // where gap blocks are read to (never looked at)
};

}  // namespace

std::unique_ptr<IoEngine> make_aio_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth) {
  return std::make_unique<AioEngine>(fd, size_bytes, queue_depth);
}

}  // namespace thinmeta::pdata
