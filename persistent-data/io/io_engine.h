// SPDX-License-Identifier: GPL-3.0-or-later
// Raw 4 KiB block I/O. Engines know nothing of formats or checksums. The interface is batch
// shaped (read_many) so an engine with many requests in flight (libaio) can fill its queue.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "persistent-data/io/block.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata {

// Takes blocks that another reader's requests cover anyway: the file engines (sync, libaio,
// io_uring) join nearby requests by reading the blocks between them (io_plan.h), and hand
// over those a sink wants instead of dropping them. Both calls come from whichever thread is reading (two may
// read at once) and must be thread-safe; wants() is called for every gap block.
class GapSink {
 public:
  virtual ~GapSink() = default;
  virtual bool wants(BlockAddr b) const = 0;
  virtual void take(BlockAddr b, const std::uint8_t* block) = 0;
};

class IoEngine {
 public:
  virtual ~IoEngine() = default;
  virtual BlockAddr nr_blocks() const = 0;
  // Reads addrs[i] into bufs + i * kBlockSize (bufs aligned to kBlockSize). errs[i] is set to 0
  // or to an errno value; one failed block does not fail the others. An address at or beyond
  // nr_blocks() fails with EINVAL. May be called from two threads at once (a walk reads its
  // next batch on a helper thread while a visitor reads): engines serialise or are stateless.
  virtual void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                         std::span<int> errs) = 0;
  // Writes addrs[i] from bufs + i * kBlockSize. Fails on the first error.
  virtual Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) = 0;
  virtual Result<> flush() = 0;
  // From now on, gap blocks `sink` wants go to it (engines that read no gaps ignore this).
  // nullptr stops it; the caller makes sure no read is in flight then.
  virtual void set_gap_sink(GapSink*) {}
  // Whether read_many calls from several threads at once run in parallel (pread on the page
  // cache, memory) rather than one after the other (the asynchronous engines serialise): a
  // walk then splits a batch's reads over its worker threads.
  virtual bool parallel_reads() const { return false; }
  // Engines that hold the blocks in memory (the mapped engine) hand out pointers to them
  // instead of copying: views[i] = where block addrs[i] is (nullptr on error), errs[i] as
  // read_many. A view stays valid, and its bytes as the device holds them, for the engine's
  // life. Returns false (and fills nothing) when the engine only copies: use read_many.
  // Nothing is verified: a caller checksums a view before it decodes it.
  virtual bool view_many(std::span<const BlockAddr> /*addrs*/, const std::uint8_t** /*views*/,
                         std::span<int> /*errs*/) {
    return false;
  }
  // Whether view_many works (the answer never changes for an engine).
  virtual bool has_views() const { return false; }

  Result<> read(BlockAddr addr, std::uint8_t* buf);
  Result<> write(BlockAddr addr, const std::uint8_t* buf);
};

// kAio: asynchronous O_DIRECT reads, io_uring where the kernel allows it, else libaio;
// kLibaio: libaio only; kMmap: a regular file mapped, blocks visited in place (mmap_engine.h;
// on a block device it means kSync).
enum class EngineKind { kAuto, kSync, kAio, kLibaio, kMmap };

struct OpenOptions {
  bool writable = false;
  bool exclusive = false;  // O_EXCL on block devices: refuse a device the kernel holds
  EngineKind engine = EngineKind::kAuto;
};

// Opens a regular file or a block device. Errors use the 1.x wording:
// "Couldn't find input file '<path>'", "Not a block device or regular file '<path>'.".
Result<std::unique_ptr<IoEngine>> open_engine(const std::string& path, const OpenOptions& opts);

// In-memory engine for tests and for building images before they are written.
std::unique_ptr<IoEngine> make_memory_engine(BlockAddr nr_blocks);

// The engine selected by $THINMETA_IO_ENGINE ("sync", "aio", "libaio", "mmap"), or kAuto.
EngineKind engine_from_env();
// An error naming the valid engines when $THINMETA_IO_ENGINE is set to anything else (unset or
// empty is fine): every tool checks it before it starts.
Result<> check_engine_env();

}  // namespace thinmeta::pdata
