// SPDX-License-Identifier: GPL-3.0-or-later
// The fields of a superblock that fails validation (a damaged byte usually spoils one field,
// not all of them) that still agree with what the metadata device shows: a held root that is
// a valid superblock copy, a metadata space map whose index block is valid, a data block size
// the held copy confirms (or a legal one when there is no copy). Trees, time, transaction id
// and data device size are checked against the metadata by repair itself.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

struct SalvagedSuperblock {
  Superblock sb;
  bool data_block_size_known = false;  // else sb.data_block_size is 0
};

// Nothing when block 0 does not look like a superblock at all (e.g. zeroed): at least two of
// magic, own block number, version and metadata block size must be right.
std::optional<SalvagedSuperblock> salvage_superblock(pdata::IoEngine& io,
                                                     std::vector<std::string>& notes);

}  // namespace thinmeta::thin
