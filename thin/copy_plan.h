// SPDX-License-Identifier: GPL-3.0-or-later
// What a copy of a thin device must do, in virtual block order (FORMAT.md §6, §14): the
// mapped runs of SNAP to copy from the data device, and the ranges a reader of SNAP sees
// unprovisioned. Full: every mapped run and every gap of [0, nr_blocks). Delta (onto a copy
// of BASE): only what differs (thin_delta's right_only and different pieces to copy,
// left_only to make unprovisioned); ranges the same in both, or unmapped in both, are left.
// No data is read here; thin_migrate and thin_send turn the steps into I/O.
#pragma once

#include <cstdint>
#include <optional>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::thin {

class CopyPlanSink {
 public:
  virtual ~CopyPlanSink() = default;
  // Virtual blocks [vblock, vblock + len) are mapped to data blocks [data_block, + len).
  virtual Result<> copy(std::uint64_t vblock, std::uint64_t data_block, std::uint64_t len) = 0;
  // Virtual blocks [vblock, vblock + len) are not provisioned in SNAP (read as zeros, or from
  // the external origin of a device that has one).
  virtual Result<> unprovisioned(std::uint64_t vblock, std::uint64_t len) = 0;
};

struct CopyPlanStats {
  std::uint64_t copy_blocks = 0, copy_runs = 0;
  std::uint64_t unprovisioned_blocks = 0, unprovisioned_runs = 0;
};

// Device `snap_id` (and `base_id` for a delta) in the top-level mapping tree at
// `mapping_root`. Steps cover [0, nr_blocks) only: mappings at or past nr_blocks (a device
// whose table is shorter than its trees) are left out. Runs join blocks adjacent in both
// address spaces. Damage and a missing device are errors. Steps come in ascending order.
Result<CopyPlanStats> plan_copy(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                std::uint64_t snap_id, std::optional<std::uint64_t> base_id,
                                std::uint64_t nr_blocks, CopyPlanSink& out);

}  // namespace thinmeta::thin
