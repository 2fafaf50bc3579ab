// SPDX-License-Identifier: GPL-3.0-or-later
// thin_trim's logic: which data blocks may be discarded. The metadata must read without damage
// (both trees, the data space map) and agree with itself (every mapped data block has a
// non-zero count); the free ranges are the blocks with count zero that no mapping names.
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

// Fails with Errc::kDamage (one line saying what is wrong) when the metadata cannot be trusted.
Result<TrimPlan> plan_trim(const Metadata& md);

}  // namespace thinmeta::thin
