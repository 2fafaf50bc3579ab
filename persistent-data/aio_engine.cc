// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/aio_engine.h"

#include <libaio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

namespace thinmeta::pdata {
namespace {

constexpr std::size_t kMaxRunBlocks = 64;  // 256 KiB per request at most

class AioEngine final : public IoEngine {
 public:
  AioEngine(int fd, std::uint64_t size, unsigned qd)
      : fd_(fd), nr_(size / kBlockSize), qd_(qd), iocbs_(qd), events_(qd) {}
  ~AioEngine() override {
    if (ctx_) io_destroy(ctx_);
    ::close(fd_);
  }
  BlockAddr nr_blocks() const override { return nr_; }

  void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                 std::span<int> errs) override {
    std::lock_guard<std::mutex> lock(mu_);  // walks read ahead on a helper thread
    std::vector<Req> reqs;
    reqs.reserve(addrs.size());
    std::size_t i = 0;
    while (i < addrs.size()) {
      if (addrs[i] >= nr_) {
        errs[i] = EINVAL;
        ++i;
        continue;
      }
      std::size_t j = i + 1;
      while (j < addrs.size() && addrs[j] == addrs[j - 1] + 1 && addrs[j] < nr_ &&
             j - i < kMaxRunBlocks)
        ++j;
      reqs.push_back(Req{i, j - i, addrs[i], 0});
      i = j;
    }
    run(reqs, bufs, /*write=*/false);
    for (const Req& r : reqs)
      for (std::size_t k = 0; k < r.nr; ++k) errs[r.first + k] = r.err;
  }

  Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) override {
    std::lock_guard<std::mutex> lock(mu_);
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
      reqs.push_back(Req{i, j - i, addrs[i], 0});
      i = j;
    }
    run(reqs, const_cast<std::uint8_t*>(bufs), /*write=*/true);
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
  };

  // Keeps up to qd_ requests in flight until all are done. Each in-flight request owns an
  // iocb slot from free_; a completion returns its slot. Short transfers are errors (EIO).
  void run(std::vector<Req>& reqs, std::uint8_t* bufs, bool write) {
    // The kernel context is created on the first batch of two or more requests: a lone
    // request is as fast with pread/pwrite on the O_DIRECT descriptor, and a process that
    // never had a context does not wait for its teardown (an RCU grace period, tens of ms)
    // at exit, which keeps small runs starting and exiting in a few ms.
    if (reqs.size() < 2 || (!ctx_ && io_setup(static_cast<int>(qd_), &ctx_) != 0)) {
      ctx_ = nullptr;
      for (Req& r : reqs) run_sync(r, bufs, write);
      return;
    }
    free_.clear();
    for (std::size_t k = 0; k < iocbs_.size(); ++k) free_.push_back(&iocbs_[k]);
    std::size_t next = 0, done = 0;
    std::vector<iocb*> batch;
    batch.reserve(qd_);
    while (done < reqs.size()) {
      batch.clear();
      while (next < reqs.size() && !free_.empty()) {
        Req& r = reqs[next++];
        iocb* cb = free_.back();
        free_.pop_back();
        std::uint8_t* p = bufs + r.first * kBlockSize;
        auto off = static_cast<long long>(r.block * kBlockSize);
        if (write)
          io_prep_pwrite(cb, fd_, p, r.nr * kBlockSize, off);
        else
          io_prep_pread(cb, fd_, p, r.nr * kBlockSize, off);
        cb->data = &r;
        batch.push_back(cb);
      }
      std::size_t submitted = submit(batch);
      for (std::size_t k = submitted; k < batch.size(); ++k) {
        // Refused by the kernel: fail the request and give its slot back.
        static_cast<Req*>(batch[k]->data)->err = EIO;
        free_.push_back(batch[k]);
        ++done;
      }
      if (free_.size() == iocbs_.size()) continue;  // nothing in flight
      int got;
      do {
        got = io_getevents(ctx_, 1, static_cast<long>(events_.size()), events_.data(), nullptr);
      } while (got == -EINTR);
      if (got < 0) {  // should not happen: fail what is left rather than spin
        for (std::size_t k = 0; k < reqs.size(); ++k)
          if (!reqs[k].err) reqs[k].err = -got;
        return;
      }
      for (int k = 0; k < got; ++k) {
        Req* r = static_cast<Req*>(events_[k].data);
        auto res = static_cast<long>(events_[k].res);
        if (res < 0)
          r->err = static_cast<int>(-res);
        else if (static_cast<std::size_t>(res) != r->nr * kBlockSize)
          r->err = EIO;
        free_.push_back(events_[k].obj);
        ++done;
      }
    }
  }

  void run_sync(Req& r, std::uint8_t* bufs, bool write) {
    std::uint8_t* p = bufs + r.first * kBlockSize;
    std::size_t len = r.nr * kBlockSize, got = 0;
    auto off = static_cast<off_t>(r.block * kBlockSize);
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

  std::size_t submit(std::vector<iocb*>& batch) {
    std::size_t off = 0;
    while (off < batch.size()) {
      int n = io_submit(ctx_, static_cast<long>(batch.size() - off), batch.data() + off);
      if (n == -EINTR || n == -EAGAIN) continue;
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    return off;
  }

  int fd_;
  BlockAddr nr_;
  io_context_t ctx_ = nullptr;
  unsigned qd_;
  std::vector<iocb> iocbs_;
  std::vector<io_event> events_;
  std::vector<iocb*> free_;
  std::mutex mu_;  // one batch at a time: the iocbs and events are shared
};

}  // namespace

std::unique_ptr<IoEngine> make_aio_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth) {
  return std::make_unique<AioEngine>(fd, size_bytes, queue_depth);
}

}  // namespace thinmeta::pdata
