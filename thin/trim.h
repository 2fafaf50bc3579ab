// SPDX-License-Identifier: GPL-3.0-or-later
// thin_trim's logic: which data blocks may be discarded. The metadata must pass the full
// thin_check (every tree, both space maps, live and held; leaks are tolerated, since a leaked
// block is only kept, never discarded); the free ranges are then the data blocks whose on-disk
// reference count is zero, streamed from the data space map a bitmap at a time.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "persistent-data/result.h"
#include "thin/metadata.h"

namespace thinmeta::thin {

struct TrimPlan {
  std::uint32_t data_block_size = 0;  // sectors
  std::uint64_t nr_data_blocks = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> free_ranges;  // [begin, end) data blocks
};

// Fails with Errc::kDamage (the first fatal finding, one line) when the metadata cannot be
// trusted.
Result<TrimPlan> plan_trim(const Metadata& md);

}  // namespace thinmeta::thin
