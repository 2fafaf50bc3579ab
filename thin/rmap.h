// SPDX-License-Identifier: GPL-3.0-or-later
// thin_rmap's logic (FORMAT.md §16): which virtual blocks of which devices map data blocks in
// a set of half-open regions.
#pragma once

#include <cstdint>
#include <vector>

#include "persistent-data/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::thin {

struct DataRegion {
  std::uint64_t begin = 0, end = 0;  // [begin, end)
};

// Data [data_begin, data_begin + len) is mapped by device `dev` at [thin_begin, ...).
struct ReverseRun {
  std::uint64_t data_begin = 0;
  std::uint64_t len = 0;
  std::uint64_t dev = 0;
  std::uint64_t thin_begin = 0;
};

// Walks every device's mappings in (device, virtual block) order, keeps those whose data block
// lies in a region, joins consecutive ones (same device, virtual and data blocks both +1) and
// returns them sorted by data block, then device. Damage is an Errc::kDamage error.
Result<std::vector<ReverseRun>> reverse_map(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                            std::vector<DataRegion> regions);

}  // namespace thinmeta::thin
