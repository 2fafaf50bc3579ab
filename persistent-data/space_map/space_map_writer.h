// SPDX-License-Identifier: GPL-3.0-or-later
// Writing complete space maps from in-core counts (FORMAT.md §7): bitmaps, then the index (a
// btree for the data map, one index block for the metadata map) and the overflow tree of
// counts >= 3. The *_blocks functions give the exact number of blocks each writer takes, so a
// metadata writer can count the metadata space map's own blocks before it writes it.
#pragma once

#include <cstdint>

#include "persistent-data/io/block_writer.h"
#include "persistent-data/space_map/ref_counts.h"
#include "persistent-data/space_map/run_counts.h"
#include "persistent-data/result.h"
#include "persistent-data/space_map/space_map_format.h"

namespace thinmeta::pdata {

inline std::uint64_t nr_bitmaps(std::uint64_t nr_blocks) {
  return (nr_blocks + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
}

// Blocks written by write_data_space_map / write_metadata_space_map when `nr_overflow` blocks
// have a count >= 3 (RefCounts::nr_overflow()).
std::uint64_t data_space_map_blocks(std::uint64_t nr_blocks, std::uint64_t nr_overflow);
std::uint64_t metadata_space_map_blocks(std::uint64_t nr_blocks, std::uint64_t nr_overflow);

// A RefCounts seen as a CountSource (runs of one block).
class RefCountsSource final : public CountSource {
 public:
  explicit RefCountsSource(const RefCounts& c) : c_(c) {}
  std::uint64_t nr_nonzero() const override { return c_.nr_nonzero(); }
  std::uint64_t nr_overflow() const override { return c_.nr_overflow(); }
  void for_each_run(const RunFn& fn) const override {
    c_.for_each_nonzero([&](std::uint64_t b, std::uint32_t n) { fn(b, 1, n); });
  }

 private:
  const RefCounts& c_;
};

// Data space map: bitmaps, the index btree (u64 bitmap number -> index entry), the overflow
// tree. Index hints are exact: nr_free counts only real blocks, none_free_before is the first
// free entry. Counts of blocks >= nr_blocks must not exist.
SmRoot write_data_space_map(BlockWriter& w, const CountSource& counts, std::uint64_t nr_blocks);

// Metadata space map: bitmaps, the overflow tree, then the index block. `counts` must already
// include every block the writer will use, its own blocks too (plan with
// metadata_space_map_blocks). nr_blocks <= kMaxMetadataBlocks.
SmRoot write_metadata_space_map(BlockWriter& w, const CountSource& counts,
                                std::uint64_t nr_blocks);

}  // namespace thinmeta::pdata
