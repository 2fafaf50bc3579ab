// SPDX-License-Identifier: GPL-3.0-or-later
// The synchronous engine: pread/preadv/pwrite through the page cache (adjacent and nearby
// blocks joined into one call, io_plan.h).
#pragma once

#include <memory>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

// Takes ownership of fd. size_bytes is the usable size (rounded down to whole blocks).
std::unique_ptr<IoEngine> make_sync_engine(int fd, std::uint64_t size_bytes);

}  // namespace thinmeta::pdata
