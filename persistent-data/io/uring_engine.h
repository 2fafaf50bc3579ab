// SPDX-License-Identifier: GPL-3.0-or-later
// The io_uring engine (raw system calls, no liburing): the libaio engine's request merging and
// queue depth, without libaio's exit cost (a process that had an aio context waits for two RCU
// grace periods, 30-40 ms on small VMs, when it exits; an io_uring is torn down asynchronously).
// Batches from different threads run on separate rings (up to three), each with its own
// requests in flight.
#pragma once

#include <memory>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

// Takes ownership of fd on success; returns nullptr (fd untouched) if the kernel has no
// io_uring (old kernel, seccomp, kernel.io_uring_disabled).
std::unique_ptr<IoEngine> make_uring_engine(int fd, std::uint64_t size_bytes, unsigned queue_depth);

}  // namespace thinmeta::pdata
