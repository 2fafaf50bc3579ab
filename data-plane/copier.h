// SPDX-License-Identifier: GPL-3.0-or-later
// The data plane's I/O engine: what thin_send, thin_receive, thin_migrate and thin_shrink use
// to move data blocks. Large requests (adjacent and nearby runs joined, up to
// CopierOptions::max_request_bytes), many in flight (pdata::AsyncQueue: io_uring, libaio or
// pread/pwrite), O_DIRECT where the kernel allows it (DataDevice), and memory bounded by
// CopierOptions::buffer_bytes whatever the size of the device or the number of runs.
//
// Three pieces:
//
//  ReadPipeline   runs of a source device -> their bytes, in the order pushed, to a ChunkSink.
//                 Push-driven, so a walker that produces ranges as it goes (thin_delta's
//                 cursors) drives it directly: push() returns once the run is queued,
//                 delivering earlier chunks when the buffers are all in use. Markers (runs
//                 without data, e.g. "unmap this range") travel in the same order.
//
//      struct Out : dataplane::ChunkSink {
//        Result<> chunk(const dataplane::Chunk& c) override {   // in push order
//          if (c.data.empty()) return write_unmap_record(c.dst, c.len);
//          return write_data_record(c.dst, c.data);               // c.data.size() == c.len
//        }
//      } out;
//      dataplane::ReadPipeline rp(*src, out, opts);
//      for (each range) THINMETA_CHECK(mapped ? rp.push({phys_bytes, virt_bytes, len})
//                                             : rp.push_marker(virt_bytes, len));
//      THINMETA_CHECK(rp.finish());
//
//  WritePipeline  writes at offsets of a target device, many in flight, from buffers it lends
//                 (no copy): buffer(len) -> fill -> write(offset). make_zero() waits for the
//                 writes in flight that overlap its range, then zeroes it (DataDevice rules).
//                 The first error is latched and returned by every later call.
//
//  copy_extents   src -> dst runs (src offset, dst offset, length), e.g. thin_migrate's copy of
//                 a device or thin_shrink's moves: each request is read into a buffer and
//                 written from it, many of each in flight. Destinations must not overlap a
//                 source of the same call when src and dst are one device (the order of the
//                 writes against later reads is not kept).
//
// All offsets and lengths are bytes. A DataDevice used by a pipeline must outlive it. None
// of these print; errors are one-line Results naming the device and the offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "data-plane/data_device.h"
#include "persistent-data/io/async_queue.h"
#include "persistent-data/io/block.h"
#include "persistent-data/result.h"

namespace thinmeta::dataplane {

struct CopierOptions {
  // All buffers together (e.g. --buffer-size-meg). 16 MiB: four 4 MiB requests in flight; on
  // the disks measured (bench/send.py) more in flight was slower, not faster.
  std::size_t buffer_bytes = 16ull << 20;
  std::size_t max_request_bytes = 4ull << 20;  // one read or write at most
  std::size_t max_gap_bytes = 256ull << 10;    // read and dropped to join two nearby runs
  pdata::EngineKind engine = pdata::EngineKind::kAuto;
};

// Bytes [src, src + len) of the source, meant for [dst, dst + len) of whatever the consumer
// writes to (a stream's virtual offset, a destination device). `tag` is the caller's.
struct Extent {
  std::uint64_t src = 0;
  std::uint64_t dst = 0;
  std::uint64_t len = 0;
  std::uint64_t tag = 0;
};

// A piece of a pushed extent (an extent longer than a request comes in several), or a
// marker (data empty). Data is valid during the chunk() call only.
struct Chunk {
  std::uint64_t src = 0;
  std::uint64_t dst = 0;
  std::uint64_t len = 0;
  std::uint64_t tag = 0;
  bool marker = false;
  std::span<const std::uint8_t> data;  // len bytes, or empty for a marker
};

// Buffer memory of the pipelines: aligned for O_DIRECT, not zeroed (pages are touched only as
// far as requests use them: a small stream does not pay for the whole budget).
class BufferPool {
 public:
  explicit BufferPool(std::size_t bytes);
  std::uint8_t* data() { return data_.get(); }

 private:
  std::unique_ptr<std::uint8_t, pdata::FreeDeleter> data_;
};

class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual Result<> chunk(const Chunk& c) = 0;
};

class ReadPipeline {
 public:
  ReadPipeline(const DataDevice& src, ChunkSink& out, const CopierOptions& opts = {});
  ~ReadPipeline();  // waits for reads in flight (never delivers after an error or finish)
  ReadPipeline(const ReadPipeline&) = delete;
  ReadPipeline& operator=(const ReadPipeline&) = delete;

  // Queues extent e (len > 0; must lie inside the source: else an error naming the offset).
  Result<> push(const Extent& e);
  // Queues a marker: delivered as a Chunk without data, after everything pushed before it.
  Result<> push_marker(std::uint64_t dst, std::uint64_t len, std::uint64_t tag = 0);
  // Reads and delivers everything still queued.
  Result<> finish();
  // Bytes read from the source so far (gaps read to join runs included).
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  struct Piece {
    Extent e;
    bool marker;
    std::size_t req;  // index into reqs_ of its request (pieces of markers: the last one)
  };
  struct Request {
    std::uint64_t src = 0;
    std::size_t len = 0;
    std::size_t slot = 0;
    bool submitted = false, done = false;
    int err = 0;
    std::uint64_t id = 0;
    std::size_t pieces_left = 0;  // data pieces not yet delivered
  };
  Result<> add(const Extent& e);
  Result<> submit_open();             // the request being built, if any
  Result<> deliver(bool wait_one);    // delivers finished pieces in order
  Result<> reap(bool block);
  Result<> take_slot(std::size_t& slot);

  const DataDevice& src_;
  ChunkSink& out_;
  CopierOptions opts_;
  std::unique_ptr<pdata::AsyncQueue> q_;
  BufferPool bufs_;
  std::size_t nr_slots_;
  std::vector<std::size_t> free_slots_;
  std::deque<Request> reqs_;  // in push order; front is the oldest undelivered
  std::uint64_t first_id_ = 0;  // id of reqs_.front()
  std::deque<Piece> pieces_;
  bool open_ = false;           // reqs_.back() is still being built
  std::optional<Error> error_;
  std::uint64_t bytes_read_ = 0;
  std::vector<pdata::AsyncDone> done_scratch_;
};

class WritePipeline {
 public:
  WritePipeline(DataDevice& dst, const CopierOptions& opts = {});
  ~WritePipeline();  // waits for writes in flight
  WritePipeline(const WritePipeline&) = delete;
  WritePipeline& operator=(const WritePipeline&) = delete;

  // A buffer of at least len bytes (len <= max_request_bytes), aligned for O_DIRECT; waits
  // for a write in flight to finish when all are in use. Valid until the matching write().
  Result<std::uint8_t*> buffer(std::size_t len);
  // Writes the len bytes of the buffer last handed out at `offset`.
  Result<> write(std::uint64_t offset, std::size_t len);
  // Copies data into buffers and writes it (any length).
  Result<> write_copy(std::uint64_t offset, std::span<const std::uint8_t> data);
  // DataDevice::make_zero after the overlapping writes in flight are done.
  Result<> make_zero(std::uint64_t offset, std::uint64_t len, std::uint64_t discard_block_bytes = 0);
  // Waits for every write; returns the first error. Does not sync (DataDevice::sync()).
  Result<> finish();
  std::uint64_t bytes_written() const { return bytes_written_; }
  // The highest offset below which every write issued so far has completed (for resume:
  // writes complete out of order). Only meaningful while writes are issued in ascending order.
  std::uint64_t completed_below() const;

 private:
  struct InFlight {
    std::uint64_t offset;
    std::size_t len;
  };
  Result<> reap(bool block);

  DataDevice& dst_;
  CopierOptions opts_;
  std::unique_ptr<pdata::AsyncQueue> q_;
  BufferPool bufs_;
  std::size_t slot_bytes_;
  std::vector<std::size_t> free_slots_;
  std::vector<std::optional<InFlight>> in_flight_;  // by slot
  std::optional<std::size_t> lent_;                 // slot handed out by buffer()
  std::optional<Error> error_;
  std::uint64_t bytes_written_ = 0;
  std::uint64_t issued_end_ = 0;  // end of the last write issued
  std::vector<pdata::AsyncDone> done_scratch_;
};

// Progress of copy_extents: bytes copied so far (called after each request's write).
using CopyProgress = std::function<void(std::uint64_t bytes_done)>;

// Copies every extent next() yields (nullopt: the end) from src to dst (e.src -> e.dst).
// Returns the first error (nothing more is started after it; what is in flight is waited for).
Result<> copy_extents(const DataDevice& src, DataDevice& dst,
                      const std::function<Result<std::optional<Extent>>()>& next,
                      const CopierOptions& opts = {}, const CopyProgress& progress = {});

}  // namespace thinmeta::dataplane
