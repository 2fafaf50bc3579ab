// SPDX-License-Identifier: GPL-3.0-or-later
// The libaio engine: many 4 KiB requests in flight (runs of consecutive blocks merged into one
// request), batched submission and completion. Used with O_DIRECT on block devices.
#pragma once

#include <memory>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

inline constexpr unsigned kDefaultQueueDepth = 128;

// Takes ownership of fd. The aio context is set up on the first multi-block batch (falls
// back to pread/pwrite on that descriptor if the kernel refuses one).
std::unique_ptr<IoEngine> make_aio_engine(int fd, std::uint64_t size_bytes,
                                          unsigned queue_depth = kDefaultQueueDepth);

}  // namespace thinmeta::pdata
