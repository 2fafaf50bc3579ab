// SPDX-License-Identifier: GPL-3.0-or-later
// Lowers on-disk reference counts in place (FORMAT.md §7): bitmap entries, reference-count tree
// values, the index entries' hints. Used to repair leaks; the caller writes the superblock (the
// root's nr_allocated) last. The pool must be offline.
#pragma once

#include <cstdint>
#include <span>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "persistent-data/space_map/space_map_reader.h"

namespace thinmeta::pdata {

struct CountFix {
  std::uint64_t block;
  std::uint32_t count;  // the new count
};

// Applies `fixes` (ascending blocks, each lower than the on-disk count) to the map `reader`
// was opened on. A block leaving the reference-count tree has its entry removed from its leaf;
// if that would leave a non-root leaf under-full (it would need rebalancing) nothing is written
// and an error explains why. Everything is read and checked before the first write; the writes
// are flushed. Returns the number of blocks whose count went to zero.
Result<std::uint64_t> fix_counts(IoEngine& io, const SpaceMapReader& reader, const SmRoot& root,
                                 std::span<const CountFix> fixes);

}  // namespace thinmeta::pdata
