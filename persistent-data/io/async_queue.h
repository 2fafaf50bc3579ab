// SPDX-License-Identifier: GPL-3.0-or-later
// Single byte-range reads and writes with many in flight, completed in any order: the queue
// under the data plane's pipelines (large requests on data devices, data-plane/copier.h).
// io_uring where the kernel allows it, else libaio, else pread/pwrite done at submit().
// One thread uses a queue at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

struct AsyncOp {
  enum class Kind : std::uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  int fd = -1;
  std::uint64_t offset = 0;  // bytes
  std::uint8_t* buf = nullptr;
  std::size_t len = 0;       // bytes (O_DIRECT descriptors: the caller keeps the alignment)
  std::uint64_t tag = 0;     // comes back in AsyncDone
};

struct AsyncDone {
  std::uint64_t tag;
  int err;  // 0, or an errno value; a transfer that stays short at the end of a file is EIO
};

class AsyncQueue {
 public:
  virtual ~AsyncQueue() = default;
  // How many operations may be outstanding (submitted and not yet returned by wait()).
  virtual unsigned depth() const = 0;
  // Starts op; outstanding() < depth() is the caller's to keep. The buffer belongs to the
  // queue until the op comes back from wait().
  virtual void submit(const AsyncOp& op) = 0;
  // Appends finished operations to `out`: at least one if any is outstanding (waiting for
  // it), none otherwise. With block == false, only those finished already.
  virtual void wait(std::vector<AsyncDone>& out, bool block = true) = 0;
  std::size_t outstanding() const { return outstanding_; }

 protected:
  std::size_t outstanding_ = 0;
};

// kAuto / kAio: io_uring, else libaio, else synchronous; kLibaio: libaio, else synchronous;
// kSync: synchronous. The queue destructor waits for what is still in flight.
std::unique_ptr<AsyncQueue> make_async_queue(unsigned depth, EngineKind kind = EngineKind::kAuto);

// The rest of a transfer that came back short (pread/pwrite loop): 0 or an errno value
// (EIO for the end of a file).
int finish_transfer_sync(const AsyncOp& op, std::size_t done);

}  // namespace thinmeta::pdata
