// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/copier.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

namespace thinmeta::dataplane {

using pdata::AsyncDone;
using pdata::AsyncOp;
using pdata::kBlockSize;

namespace {

std::size_t slot_bytes_for(const CopierOptions& o) {
  std::size_t b = std::max<std::size_t>(o.max_request_bytes, kBlockSize);
  return (b + kBlockSize - 1) / kBlockSize * kBlockSize;
}

std::size_t nr_slots_for(const CopierOptions& o) {
  return std::max<std::size_t>(2, o.buffer_bytes / slot_bytes_for(o));
}

Error io_error(const char* what, const std::string& path, std::uint64_t offset, int err) {
  return Error{err == ENOSPC ? Errc::kNoSpace : Errc::kIo,
               std::string(what) + " '" + path + "' at byte " + std::to_string(offset) +
                   " failed: " + std::strerror(err)};
}

}  // namespace

BufferPool::BufferPool(std::size_t bytes) {
  bytes = (bytes + kBlockSize - 1) / kBlockSize * kBlockSize;
  void* p = std::aligned_alloc(kBlockSize, bytes);
  if (!p) throw std::bad_alloc();
  data_.reset(static_cast<std::uint8_t*>(p));
}

// ---------------------------------------------------------------------------------------------
// ReadPipeline

ReadPipeline::ReadPipeline(const DataDevice& src, ChunkSink& out, const CopierOptions& opts)
    : src_(src), out_(out), opts_(opts),
      bufs_(nr_slots_for(opts) * slot_bytes_for(opts)) {
  opts_.max_request_bytes = slot_bytes_for(opts);
  nr_slots_ = nr_slots_for(opts);
  q_ = pdata::make_async_queue(static_cast<unsigned>(nr_slots_), opts.engine);
  for (std::size_t s = nr_slots_; s-- > 0;) free_slots_.push_back(s);
}

ReadPipeline::~ReadPipeline() {
  std::vector<AsyncDone> drop;
  while (q_->outstanding()) q_->wait(drop);
}

Result<> ReadPipeline::push(const Extent& e) {
  if (error_) return std::unexpected(*error_);
  if (!e.len) return {};
  if (e.src + e.len > src_.size_bytes() || e.src + e.len < e.src) {
    error_ = Error{Errc::kTooSmall, "read beyond the end of '" + src_.path() + "' (bytes " +
                                        std::to_string(e.src) + "+" + std::to_string(e.len) +
                                        ", size " + std::to_string(src_.size_bytes()) + ")"};
    return std::unexpected(*error_);
  }
  return add(e);
}

Result<> ReadPipeline::push_marker(std::uint64_t dst, std::uint64_t len, std::uint64_t tag) {
  if (error_) return std::unexpected(*error_);
  pieces_.push_back(Piece{Extent{0, dst, len, tag}, true, 0});
  return deliver(false);
}

Result<> ReadPipeline::add(const Extent& whole) {
  Extent e = whole;
  const std::size_t max = opts_.max_request_bytes;
  while (e.len) {
    if (open_) {
      Request& r = reqs_.back();
      std::uint64_t end = r.src + r.len;
      if (e.src >= end && e.src - end <= opts_.max_gap_bytes && e.src - r.src < max) {
        std::uint64_t take = std::min<std::uint64_t>(e.len, max - (e.src - r.src));
        r.len = static_cast<std::size_t>(e.src + take - r.src);
        ++r.pieces_left;
        pieces_.push_back(Piece{Extent{e.src, e.dst, take, e.tag}, false, r.id});
        e.src += take;
        e.dst += take;
        e.len -= take;
        if (r.len == max) THINMETA_CHECK(submit_open());
        continue;
      }
      THINMETA_CHECK(submit_open());
    }
    std::size_t slot = 0;
    THINMETA_CHECK(take_slot(slot));
    std::uint64_t take = std::min<std::uint64_t>(e.len, max);
    Request r;
    r.src = e.src;
    r.len = static_cast<std::size_t>(take);
    r.slot = slot;
    r.id = first_id_ + reqs_.size();
    r.pieces_left = 1;
    reqs_.push_back(r);
    open_ = true;
    pieces_.push_back(Piece{Extent{e.src, e.dst, take, e.tag}, false, r.id});
    e.src += take;
    e.dst += take;
    e.len -= take;
    if (take == max) THINMETA_CHECK(submit_open());
  }
  return deliver(false);
}

Result<> ReadPipeline::submit_open() {
  if (!open_) return {};
  open_ = false;
  Request& r = reqs_.back();
  std::uint8_t* buf = bufs_.data() + r.slot * opts_.max_request_bytes;
  AsyncOp op;
  op.kind = AsyncOp::Kind::kRead;
  op.fd = src_.fd_for(r.src, r.len, buf);
  op.offset = r.src;
  op.buf = buf;
  op.len = r.len;
  op.tag = r.id;
  q_->submit(op);
  r.submitted = true;
  return {};
}

Result<> ReadPipeline::reap(bool block) {
  done_scratch_.clear();
  q_->wait(done_scratch_, block);
  for (const AsyncDone& d : done_scratch_) {
    Request& r = reqs_[static_cast<std::size_t>(d.tag - first_id_)];
    r.done = true;
    r.err = d.err;
    bytes_read_ += r.len;
  }
  return {};
}

Result<> ReadPipeline::take_slot(std::size_t& slot) {
  while (free_slots_.empty()) THINMETA_CHECK(deliver(true));
  slot = free_slots_.back();
  free_slots_.pop_back();
  return {};
}

// Delivers pieces in order while their requests are done. wait_one: waits until at least one
// request has been delivered whole (its slot free again) or nothing is left to wait for.
Result<> ReadPipeline::deliver(bool wait_one) {
  if (error_) return std::unexpected(*error_);
  if (q_->outstanding()) THINMETA_CHECK(reap(false));
  bool freed = false;
  while (!pieces_.empty()) {
    Piece& p = pieces_.front();
    Chunk c;
    c.dst = p.e.dst;
    c.len = p.e.len;
    c.tag = p.e.tag;
    if (p.marker) {
      c.marker = true;
    } else {
      Request& r = reqs_[static_cast<std::size_t>(p.req - first_id_)];
      if (!r.done) {
        if (!wait_one || freed) break;
        if (!r.submitted) THINMETA_CHECK(submit_open());
        THINMETA_CHECK(reap(true));
        continue;
      }
      if (r.err) {
        error_ = io_error("read of", src_.path(), r.src, r.err);
        return std::unexpected(*error_);
      }
      c.src = p.e.src;
      c.data = std::span<const std::uint8_t>(
          bufs_.data() + r.slot * opts_.max_request_bytes + (p.e.src - r.src),
          static_cast<std::size_t>(p.e.len));
    }
    if (auto ok = out_.chunk(c); !ok) {
      error_ = ok.error();
      return std::unexpected(*error_);
    }
    if (!p.marker) --reqs_[static_cast<std::size_t>(p.req - first_id_)].pieces_left;
    pieces_.pop_front();
    while (!reqs_.empty() && reqs_.front().done && reqs_.front().pieces_left == 0) {
      free_slots_.push_back(reqs_.front().slot);
      reqs_.pop_front();
      ++first_id_;
      freed = true;
    }
  }
  return {};
}

Result<> ReadPipeline::finish() {
  if (error_) return std::unexpected(*error_);
  THINMETA_CHECK(submit_open());
  while (!pieces_.empty()) THINMETA_CHECK(deliver(true));
  return {};
}

// ---------------------------------------------------------------------------------------------
// WritePipeline

WritePipeline::WritePipeline(DataDevice& dst, const CopierOptions& opts)
    : dst_(dst), opts_(opts), bufs_(nr_slots_for(opts) * slot_bytes_for(opts)) {
  slot_bytes_ = slot_bytes_for(opts);
  std::size_t n = nr_slots_for(opts);
  q_ = pdata::make_async_queue(static_cast<unsigned>(n), opts.engine);
  in_flight_.resize(n);
  for (std::size_t s = n; s-- > 0;) free_slots_.push_back(s);
}

WritePipeline::~WritePipeline() {
  std::vector<AsyncDone> drop;
  while (q_->outstanding()) q_->wait(drop);
}

Result<> WritePipeline::reap(bool block) {
  done_scratch_.clear();
  q_->wait(done_scratch_, block);
  for (const AsyncDone& d : done_scratch_) {
    auto slot = static_cast<std::size_t>(d.tag);
    InFlight w = *in_flight_[slot];
    in_flight_[slot].reset();
    free_slots_.push_back(slot);
    if (d.err && !error_) error_ = io_error("write to", dst_.path(), w.offset, d.err);
    if (!d.err) bytes_written_ += w.len;
  }
  if (error_) return std::unexpected(*error_);
  return {};
}

Result<std::uint8_t*> WritePipeline::buffer(std::size_t len) {
  if (error_) return std::unexpected(*error_);
  if (len > slot_bytes_)
    return fail(Errc::kInvalidArgument, "write of " + std::to_string(len) +
                                            " bytes is larger than a buffer");
  if (!lent_) {
    while (free_slots_.empty()) THINMETA_CHECK(reap(true));
    lent_ = free_slots_.back();
    free_slots_.pop_back();
  }
  return bufs_.data() + *lent_ * slot_bytes_;
}

Result<> WritePipeline::write(std::uint64_t offset, std::size_t len) {
  assert(lent_);
  std::size_t slot = *lent_;
  lent_.reset();
  if (error_) {
    free_slots_.push_back(slot);
    return std::unexpected(*error_);
  }
  if (offset + len > dst_.size_bytes()) {
    free_slots_.push_back(slot);
    error_ = Error{Errc::kNoSpace, "write beyond the end of '" + dst_.path() + "' (bytes " +
                                       std::to_string(offset) + "+" + std::to_string(len) +
                                       ", size " + std::to_string(dst_.size_bytes()) + ")"};
    return std::unexpected(*error_);
  }
  std::uint8_t* buf = bufs_.data() + slot * slot_bytes_;
  AsyncOp op;
  op.kind = AsyncOp::Kind::kWrite;
  op.fd = dst_.fd_for(offset, len, buf);
  op.offset = offset;
  op.buf = buf;
  op.len = len;
  op.tag = slot;
  in_flight_[slot] = InFlight{offset, len};
  issued_end_ = offset + len;
  q_->submit(op);
  return reap(false);
}

Result<> WritePipeline::write_copy(std::uint64_t offset, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    std::size_t n = std::min(data.size(), slot_bytes_);
    THINMETA_TRY(std::uint8_t* buf, buffer(n));
    std::memcpy(buf, data.data(), n);
    THINMETA_CHECK(write(offset, n));
    offset += n;
    data = data.subspan(n);
  }
  return {};
}

Result<> WritePipeline::make_zero(std::uint64_t offset, std::uint64_t len,
                                  std::uint64_t discard_block_bytes) {
  if (error_) return std::unexpected(*error_);
  auto overlaps = [&] {
    for (const auto& w : in_flight_)
      if (w && w->offset < offset + len && offset < w->offset + w->len) return true;
    return false;
  };
  while (overlaps()) THINMETA_CHECK(reap(true));
  if (auto ok = dst_.make_zero(offset, len, discard_block_bytes); !ok) {
    error_ = ok.error();
    return ok;
  }
  issued_end_ = std::max(issued_end_, offset + len);
  return {};
}

Result<> WritePipeline::finish() {
  while (q_->outstanding()) {
    auto ok = reap(true);
    (void)ok;  // the first error is latched; wait for the rest all the same
  }
  if (error_) return std::unexpected(*error_);
  return {};
}

std::uint64_t WritePipeline::completed_below() const {
  std::uint64_t low = issued_end_;
  for (const auto& w : in_flight_)
    if (w) low = std::min(low, w->offset);
  return low;
}

// ---------------------------------------------------------------------------------------------
// copy_extents

Result<> copy_extents(const DataDevice& src, DataDevice& dst,
                      const std::function<Result<std::optional<Extent>>()>& next,
                      const CopierOptions& opts, const CopyProgress& progress) {
  const std::size_t max = slot_bytes_for(opts);
  const std::size_t nr = nr_slots_for(opts);
  auto q = pdata::make_async_queue(static_cast<unsigned>(nr), opts.engine);
  BufferPool bufs(nr * max);
  struct Req {
    std::uint64_t src = 0, dst = 0;
    std::size_t len = 0;
    bool writing = false;
  };
  std::vector<Req> reqs(nr);
  std::vector<std::size_t> free_slots;
  for (std::size_t s = nr; s-- > 0;) free_slots.push_back(s);
  std::optional<Extent> cur;
  bool input_done = false;
  std::optional<Error> error;
  std::uint64_t copied = 0;
  std::vector<AsyncDone> done;

  auto pull = [&]() -> bool {  // makes cur hold the next extent; false at the end or on error
    while (!cur || !cur->len) {
      cur.reset();
      if (input_done) return false;
      auto e = next();
      if (!e) {
        error = e.error();
        input_done = true;
        return false;
      }
      if (!*e) {
        input_done = true;
        return false;
      }
      const Extent& x = **e;
      if (x.src + x.len > src.size_bytes() || x.dst + x.len > dst.size_bytes()) {
        error = Error{Errc::kTooSmall,
                      "copy of bytes " + std::to_string(x.src) + "+" + std::to_string(x.len) +
                          " to " + std::to_string(x.dst) + " goes beyond the end of '" +
                          (x.src + x.len > src.size_bytes() ? src.path() : dst.path()) + "'"};
        input_done = true;
        return false;
      }
      cur = x;
    }
    return true;
  };
  auto submit = [&](std::size_t slot, bool write) {
    Req& r = reqs[slot];
    std::uint8_t* buf = bufs.data() + slot * max;
    AsyncOp op;
    op.kind = write ? AsyncOp::Kind::kWrite : AsyncOp::Kind::kRead;
    op.fd = write ? dst.fd_for(r.dst, r.len, buf) : src.fd_for(r.src, r.len, buf);
    op.offset = write ? r.dst : r.src;
    op.buf = buf;
    op.len = r.len;
    op.tag = slot;
    r.writing = write;
    q->submit(op);
  };

  for (;;) {
    while (!error && !free_slots.empty() && pull()) {
      std::size_t slot = free_slots.back();
      free_slots.pop_back();
      Req& r = reqs[slot];
      r.src = cur->src;
      r.dst = cur->dst;
      r.len = static_cast<std::size_t>(std::min<std::uint64_t>(cur->len, max));
      cur->src += r.len;
      cur->dst += r.len;
      cur->len -= r.len;
      // Join the following extents while both sides stay contiguous.
      while (r.len < max && pull() && cur->src == r.src + r.len && cur->dst == r.dst + r.len) {
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(cur->len, max - r.len));
        r.len += take;
        cur->src += take;
        cur->dst += take;
        cur->len -= take;
      }
      submit(slot, false);
    }
    if (!q->outstanding()) break;
    done.clear();
    q->wait(done, true);
    for (const AsyncDone& d : done) {
      auto slot = static_cast<std::size_t>(d.tag);
      Req& r = reqs[slot];
      if (d.err) {
        if (!error)
          error = r.writing ? io_error("write to", dst.path(), r.dst, d.err)
                            : io_error("read of", src.path(), r.src, d.err);
        free_slots.push_back(slot);
      } else if (!r.writing) {
        if (error)
          free_slots.push_back(slot);
        else
          submit(slot, true);
      } else {
        copied += r.len;
        free_slots.push_back(slot);
        if (progress) progress(copied);
      }
    }
  }
  if (error) return std::unexpected(*error);
  return {};
}

}  // namespace thinmeta::dataplane
