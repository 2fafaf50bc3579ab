// SPDX-License-Identifier: GPL-3.0-or-later
// Sequential allocation and batched writing of freshly built metadata blocks (restore, repair):
// blocks are handed out at ascending addresses and written in large write_many batches, each
// on a helper thread while the caller fills the next (two batch buffers).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "persistent-data/io/block.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata {

class BlockWriter {
 public:
  // Allocates from `first` upwards and never beyond `limit` (exclusive). `io` may be null: the
  // writer then only counts (a dry run). `io` must outlive the writer.
  BlockWriter(IoEngine* io, BlockAddr first, BlockAddr limit, std::size_t batch_blocks = 1024);
  ~BlockWriter();
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  // A zeroed block for address `addr` (returned through the argument) that the caller fills and
  // stamps before the next call; it is written later. Past `limit` it returns scratch space and
  // records a kNoSpace error.
  std::uint8_t* alloc(BlockAddr& addr);
  BlockAddr next() const { return next_; }
  // Leaves the next n addresses to another writer over the same engine (whose write jobs
  // queue on the same helper lane) and goes on after them.
  void skip(BlockAddr n) { next_ += n; }
  // Writes what is pending; returns the first error seen (I/O or out of space).
  Result<> finish();

 private:
  void drain();  // starts writing the current batch, switches to the other buffer
  void wait();   // for the batch being written

  IoEngine* io_;
  BlockAddr next_;
  BlockAddr limit_;
  std::size_t batch_;
  AlignedBuffer bufs_[2];
  std::vector<BlockAddr> addrs_[2];
  unsigned cur_ = 0;
  Pending<Result<>> writing_;  // the other buffer's batch, while it is written
  std::optional<Error> error_;
};

}  // namespace thinmeta::pdata
