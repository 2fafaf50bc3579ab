// SPDX-License-Identifier: GPL-3.0-or-later
// A thin device's content copied onto a destination (thin_migrate): the steps of
// thin/copy_plan.h turned into I/O. Mapped runs are read from the pool's data device at their
// physical blocks (ReadPipeline) and written at their virtual offsets (WritePipeline); ranges
// the device reads unprovisioned are read from its external origin when it has one (zeros
// past the origin's end), else made to read as zeros on the destination. Memory is the copier's
// buffers whatever the device's size.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>

#include "data-plane/copier.h"
#include "data-plane/data_device.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::dataplane {

struct ThinCopyOptions {
  std::uint64_t block_bytes = 0;  // the pool's data block size
  std::uint64_t size_bytes = 0;   // the thin device's size (its table's length)
  std::uint64_t snap_id = 0;
  std::optional<std::uint64_t> base_id;  // delta onto a destination holding BASE's content
  const DataDevice* origin = nullptr;    // the thin device's external origin, if any
  // Unprovisioned ranges (without an origin) are made zero on the destination; false leaves
  // them as they are (a destination known to read zeros: a file just created).
  bool zero_unprovisioned = true;
  // DataDevice::make_zero's rule: > 0 when the destination reads whole discarded blocks of
  // that size as zeros (a dm-thin device without an external origin).
  std::uint64_t dest_discard_block_bytes = 0;
  CopierOptions copier;
  // When set: the virtual offset up to which the destination has been dealt with (writes
  // issued, ranges zeroed), advanced as the copy goes (for a progress display; opts.size_bytes
  // at the end).
  std::atomic<std::uint64_t>* done_below = nullptr;
};

struct ThinCopyStats {
  std::uint64_t bytes_copied = 0;       // read from the data device
  std::uint64_t bytes_from_origin = 0;  // read from the external origin
  std::uint64_t bytes_zeroed = 0;       // made zero on the destination
};

// Copies device opts.snap_id of the mapping tree at `mapping_root` (read through `meta`) from
// `data` to `dest`, which must hold at least opts.size_bytes. Waits for every write; does not
// sync. The first error stops it (one line naming the device and offset).
Result<ThinCopyStats> copy_thin(pdata::IoEngine& meta, pdata::BlockAddr mapping_root,
                                const DataDevice& data, DataDevice& dest,
                                const ThinCopyOptions& opts);

}  // namespace thinmeta::dataplane
