// SPDX-License-Identifier: GPL-3.0-or-later
// How a batch of block addresses becomes requests, shared by the asynchronous engines (libaio,
// io_uring): consecutive blocks join into one request of up to kMaxRunBlocks; for reads,
// nearby blocks too (gaps of up to kMaxGap blocks, read into a scratch buffer and dropped),
// so a fragmented tree costs a few large requests instead of one per block.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "persistent-data/io/block.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata {

inline constexpr std::size_t kMaxRunBlocks = 64;  // 256 KiB per request at most
inline constexpr std::size_t kMaxGap = 8;         // blocks read and dropped to join two

struct IoRequest {
  std::size_t first;  // index into the caller's arrays
  std::size_t nr;     // the caller's blocks in it
  BlockAddr block;    // where it starts on the device
  int err = 0;
  std::size_t span;   // device blocks it covers (nr + gaps)
  std::uint32_t iov_first = 0, iov_n = 0;  // its iovecs in IoPlan::iovs when it has gaps

  std::size_t bytes() const { return span * kBlockSize; }
};

struct IoPlan {
  std::vector<IoRequest> reqs;
  std::vector<iovec> iovs;
  // Gap blocks a GapSink wants, read into a buffer of the planning thread's (slot k at
  // harvest + k * kBlockSize; valid until that thread plans again).
  struct Harvested {
    BlockAddr addr;
    std::size_t req;  // index into reqs
  };
  std::vector<Harvested> harvested;
  std::uint8_t* harvest = nullptr;
};

// Reads of addrs into bufs (block i at bufs + i * kBlockSize). Addresses >= nr_blocks get
// errs[i] = EINVAL and no request. `gap_scratch` holds kMaxGap blocks; gap blocks `sink`
// wants are read into the calling thread's harvest buffer instead (read_many plans, runs and
// finishes on one thread).
IoPlan plan_reads(std::span<const BlockAddr> addrs, BlockAddr nr_blocks, std::uint8_t* bufs,
                  std::uint8_t* gap_scratch, std::span<int> errs, const GapSink* sink = nullptr);
// Writes: consecutive runs only (callers check addresses first).
IoPlan plan_writes(std::span<const BlockAddr> addrs);

// One request with pread/pwrite/preadv on fd; a short transfer is EIO.
void run_request_sync(int fd, IoRequest& r, std::uint8_t* bufs, bool write, const IoPlan& plan);

// Copies each request's status into errs; a failed request with gaps is read again block run
// by block run (perhaps only a gap block was unreadable). Harvested gap blocks of requests
// that succeeded go to sink->take().
void finish_reads(int fd, IoPlan& plan, std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                  std::span<int> errs, GapSink* sink = nullptr);

// Writes must stay on the device: the 1.x message for the first address that does not.
Result<> check_write_range(std::span<const BlockAddr> addrs, BlockAddr nr_blocks);
// The first failed request of a write plan, as an error.
Result<> write_result(const IoPlan& plan);
// fsync for the engines' flush() (EINVAL: the file cannot be synced, nothing to do).
Result<> flush_fd(int fd);

// What the asynchronous engines share: batches planned as above (gap blocks to the sink set),
// run by the engine's run(). Owns fd (closed after the engine's own teardown).
class PlannedEngine : public IoEngine {
 public:
  PlannedEngine(int fd, std::uint64_t size_bytes);
  ~PlannedEngine() override;
  BlockAddr nr_blocks() const override { return nr_; }
  void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                 std::span<int> errs) override;
  Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) override;
  Result<> flush() override { return flush_fd(fd_); }
  void set_gap_sink(GapSink* s) override { sink_.store(s, std::memory_order_release); }

 protected:
  // Runs every request of the plan; a request's failure goes to its err.
  virtual void run(IoPlan& plan, std::uint8_t* bufs, bool write) = 0;
  int fd() const { return fd_; }

 private:
  int fd_;
  BlockAddr nr_;
  AlignedBuffer gap_scratch_;            // where gap blocks are read to (never looked at)
  std::atomic<GapSink*> sink_{nullptr};  // takes the gap blocks it wants
};

}  // namespace thinmeta::pdata
