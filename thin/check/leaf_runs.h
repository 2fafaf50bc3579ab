// SPDX-License-Identifier: GPL-3.0-or-later
// A bottom-level mapping leaf decoded for thin_check (FORMAT.md §6.1): its data blocks as runs
// of consecutive blocks, in leaf order, and the mappings it must report (data blocks beyond
// the data device, times newer than the pool's). Decoding needs nothing but the leaf and two
// numbers, so it can run anywhere; counting the runs is left to the caller.
#pragma once

#include <cstdint>

#include "persistent-data/btree/btree_node.h"
#include "thin/device_details.h"

namespace thinmeta::thin::check_detail {

struct LeafRuns {
  struct Run {
    std::uint64_t begin;
    std::uint64_t len;
  };
  static constexpr std::uint32_t kMaxEntries = pdata::max_entries_for(kMappingValueSize);

  std::uint32_t nr_runs = 0;
  // Mappings whose data block is >= the data device's size: counted, left out of the runs.
  std::uint32_t beyond = 0;
  std::uint64_t first_beyond_key = 0;
  BlockTime first_beyond{};
  // Mappings whose time is > the pool time (they are still counted in the runs).
  std::uint32_t newer = 0;
  std::uint64_t first_newer_key = 0;
  BlockTime first_newer{};
  Run runs[kMaxEntries];
};
// Fits a metadata block: a batch of leaves can be decoded into a buffer of as many blocks.
static_assert(sizeof(LeafRuns) <= pdata::kBlockSize);

// Decodes a leaf whose shape has been checked (nr_entries <= LeafRuns::kMaxEntries). Runs
// join consecutive data blocks of consecutive entries, skipping entries beyond nr_data.
// SIMD where the CPU has it; `portable` forces the plain loop (tests compare the two).
void decode_leaf_runs(const pdata::NodeView& n, std::uint64_t nr_data, std::uint32_t pool_time,
                      LeafRuns& out, bool portable = false);

}  // namespace thinmeta::thin::check_detail
