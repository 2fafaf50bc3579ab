// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/async_queue.h"

#include <libaio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "persistent-data/io/uring_ring.h"

namespace thinmeta::pdata {

int finish_transfer_sync(const AsyncOp& op, std::size_t done) {
  while (done < op.len) {
    ssize_t n = op.kind == AsyncOp::Kind::kRead
                    ? ::pread(op.fd, op.buf + done, op.len - done, static_cast<off_t>(op.offset + done))
                    : ::pwrite(op.fd, op.buf + done, op.len - done, static_cast<off_t>(op.offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return op.kind == AsyncOp::Kind::kWrite ? ENOSPC : EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

namespace {

// Each op done at submit(); wait() hands the results back.
class SyncQueue final : public AsyncQueue {
 public:
  explicit SyncQueue(unsigned depth) : depth_(depth) {}
  unsigned depth() const override { return depth_; }
  void submit(const AsyncOp& op) override {
    done_.push_back(AsyncDone{op.tag, finish_transfer_sync(op, 0)});
    ++outstanding_;
  }
  void wait(std::vector<AsyncDone>& out, bool) override {
    for (const AsyncDone& d : done_) out.push_back(d);
    outstanding_ -= done_.size();
    done_.clear();
  }

 private:
  unsigned depth_;
  std::deque<AsyncDone> done_;
};

// Ops in a table indexed by slot; the slot travels as the kernel's user data.
class SlotTable {
 public:
  explicit SlotTable(unsigned depth) : ops_(depth) {
    for (unsigned i = depth; i-- > 0;) free_.push_back(i);
  }
  unsigned take(const AsyncOp& op) {
    unsigned s = free_.back();
    free_.pop_back();
    ops_[s] = op;
    return s;
  }
  // A completion with kernel result `res` (bytes or -errno) for slot s.
  AsyncDone finish(unsigned s, long res) {
    const AsyncOp& op = ops_[s];
    int err = 0;
    if (res < 0)
      err = static_cast<int>(-res);
    else if (static_cast<std::size_t>(res) != op.len)
      err = finish_transfer_sync(op, static_cast<std::size_t>(res));
    free_.push_back(s);
    return AsyncDone{op.tag, err};
  }
  const AsyncOp& op(unsigned s) const { return ops_[s]; }

 private:
  std::vector<AsyncOp> ops_;
  std::vector<unsigned> free_;
};

class UringQueue final : public AsyncQueue {
 public:
  UringQueue(std::unique_ptr<UringRing> ring, unsigned depth)
      : ring_(std::move(ring)), depth_(depth), slots_(depth) {}
  ~UringQueue() override {
    std::vector<AsyncDone> drop;
    while (outstanding_) wait(drop, true);
  }
  unsigned depth() const override { return depth_; }
  void submit(const AsyncOp& op) override {
    unsigned s = slots_.take(op);
    io_uring_sqe e;
    std::memset(&e, 0, sizeof(e));
    e.opcode = op.kind == AsyncOp::Kind::kRead ? IORING_OP_READ : IORING_OP_WRITE;
    e.fd = op.fd;
    e.addr = reinterpret_cast<std::uint64_t>(op.buf);
    e.len = static_cast<std::uint32_t>(op.len);
    e.off = op.offset;
    e.user_data = s;
    ++outstanding_;
    if (!ring_->queue(e)) {  // cannot happen while outstanding <= ring depth; be safe
      done_.push_back(slots_.finish(s, 0));
      return;
    }
    for (unsigned tries = 0;; ++tries) {
      int n = ring_->enter(1, 0);
      if (n > 0) return;
      if (n == -EINTR) continue;
      if ((n == 0 || n == -EAGAIN || n == -EBUSY) && tries < 10000) {
        std::size_t before = done_.size();  // make room: take what is finished, try again
        harvest(false);
        if (done_.size() == before) ::usleep(100);
        continue;
      }
      // The kernel refuses it: take it back and do it here.
      if (ring_->withdraw()) done_.push_back(slots_.finish(s, 0));
      return;
    }
  }
  void wait(std::vector<AsyncDone>& out, bool block) override {
    if (outstanding_ > done_.size()) harvest(block && done_.empty());
    for (const AsyncDone& d : done_) out.push_back(d);
    outstanding_ -= done_.size();
    done_.clear();
  }

 private:
  // Completions ready go to done_; with block, waits until there is one.
  void harvest(bool block) {
    for (;;) {
      ring_->reap([&](std::uint64_t user_data, std::int32_t res) {
        done_.push_back(slots_.finish(static_cast<unsigned>(user_data), res));
      });
      if (!done_.empty() || !block) return;
      int n = ring_->enter(0, 1);
      if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) return;
    }
  }

  std::unique_ptr<UringRing> ring_;
  unsigned depth_;
  SlotTable slots_;
  std::vector<AsyncDone> done_;  // finished without the kernel
};

class LibaioQueue final : public AsyncQueue {
 public:
  LibaioQueue(io_context_t ctx, unsigned depth)
      : ctx_(ctx), depth_(depth), slots_(depth), iocbs_(depth), events_(depth) {}
  ~LibaioQueue() override {
    std::vector<AsyncDone> drop;
    while (outstanding_) wait(drop, true);
    io_destroy(ctx_);
  }
  unsigned depth() const override { return depth_; }
  void submit(const AsyncOp& op) override {
    unsigned s = slots_.take(op);
    iocb* cb = &iocbs_[s];
    if (op.kind == AsyncOp::Kind::kRead)
      io_prep_pread(cb, op.fd, op.buf, op.len, static_cast<long long>(op.offset));
    else
      io_prep_pwrite(cb, op.fd, op.buf, op.len, static_cast<long long>(op.offset));
    cb->data = reinterpret_cast<void*>(static_cast<std::uintptr_t>(s));
    ++outstanding_;
    int r;
    do r = io_submit(ctx_, 1, &cb);
    while (r == -EINTR || r == -EAGAIN);
    if (r != 1) done_.push_back(slots_.finish(s, r < 0 ? r : -EIO));
  }
  void wait(std::vector<AsyncDone>& out, bool block) override {
    for (const AsyncDone& d : done_) out.push_back(d);
    outstanding_ -= done_.size();
    bool got_some = !done_.empty();
    done_.clear();
    std::size_t in_kernel = outstanding_;
    if (!in_kernel) return;
    timespec zero{0, 0};
    int n;
    do n = io_getevents(ctx_, block && !got_some ? 1 : 0, static_cast<long>(in_kernel),
                        events_.data(), block && !got_some ? nullptr : &zero);
    while (n == -EINTR);
    for (int i = 0; i < n; ++i) {
      auto s = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(events_[i].data));
      long res = static_cast<long>(events_[i].res);
      out.push_back(slots_.finish(s, res));
      --outstanding_;
    }
  }

 private:
  io_context_t ctx_;
  unsigned depth_;
  SlotTable slots_;
  std::vector<iocb> iocbs_;
  std::vector<io_event> events_;
  std::vector<AsyncDone> done_;
};

}  // namespace

std::unique_ptr<AsyncQueue> make_async_queue(unsigned depth, EngineKind kind) {
  if (depth == 0) depth = 1;
  if (kind == EngineKind::kAuto) kind = engine_from_env();
  if (kind == EngineKind::kAuto || kind == EngineKind::kAio) {
    // The ring holds twice the depth: completions never overflow it.
    if (auto ring = UringRing::create(depth * 2)) return std::make_unique<UringQueue>(std::move(ring), depth);
    kind = EngineKind::kLibaio;
  }
  if (kind == EngineKind::kLibaio) {
    io_context_t ctx = nullptr;
    if (io_setup(static_cast<int>(depth), &ctx) == 0) return std::make_unique<LibaioQueue>(ctx, depth);
  }
  return std::make_unique<SyncQueue>(depth);
}

}  // namespace thinmeta::pdata
