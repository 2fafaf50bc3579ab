// SPDX-License-Identifier: GPL-3.0-or-later
// Which metadata blocks a metadata space map says are in use (count > 0), read from its index
// block and bitmaps (FORMAT.md §7.3, §7.5). Repair uses it to tell live trees from stale copies
// left in free blocks by copy-on-write (FORMAT.md §1).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "persistent-data/io/io_engine.h"

namespace thinmeta::thin {

class AllocationView {
 public:
  enum State : std::uint8_t { kFree, kAllocated, kUnknown };

  // Reads the index block at `index_block` and its bitmaps, covering [0, nr_blocks). Returns
  // nothing when the index block itself is unusable. Unreadable bitmaps leave their range
  // kUnknown.
  static std::optional<AllocationView> read(pdata::IoEngine& io, pdata::BlockAddr index_block,
                                            std::uint64_t nr_blocks);

  State state(pdata::BlockAddr b) const {
    return b < states_.size() ? static_cast<State>(states_[b]) : kUnknown;
  }
  pdata::BlockAddr index_block() const { return index_block_; }

 private:
  pdata::BlockAddr index_block_ = 0;
  std::vector<std::uint8_t> states_;
};

}  // namespace thinmeta::thin
