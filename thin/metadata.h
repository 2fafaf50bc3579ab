// SPDX-License-Identifier: GPL-3.0-or-later
// Opening metadata for reading, from the live superblock (block 0) or from the metadata
// snapshot it holds (held_root, FORMAT.md §9).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

// Which root to read: the live one, or the held snapshot (optionally naming its block, which
// must then match the superblock's held_root).
struct RootSelector {
  bool snapshot = false;
  std::optional<BlockAddr> snapshot_block;
};

class Metadata {
 public:
  // Validates block 0 and, for a snapshot, the held copy. `io` is owned.
  static Result<Metadata> open(std::unique_ptr<pdata::IoEngine> io, const RootSelector& root);

  pdata::IoEngine& io() const { return *io_; }
  const Superblock& live() const { return live_; }  // block 0
  const Superblock& sb() const { return sb_; }      // the one being read: live or held copy
  bool from_snapshot() const { return from_snapshot_; }
  // Size of the data space map; 0 for a metadata snapshot (its space-map roots are zero).
  std::uint64_t nr_data_blocks() const { return sb_.data_sm.nr_blocks; }
  BlockAddr mapping_root() const { return sb_.data_mapping_root; }
  BlockAddr details_root() const { return sb_.device_details_root; }
  // The metadata device size the space map covers (the authoritative size, FORMAT.md D.2).
  BlockAddr nr_metadata_blocks() const;

 private:
  Metadata(std::unique_ptr<pdata::IoEngine> io, Superblock live, Superblock sb, bool snap)
      : io_(std::move(io)), live_(live), sb_(sb), from_snapshot_(snap) {}
  std::unique_ptr<pdata::IoEngine> io_;
  Superblock live_;
  Superblock sb_;
  bool from_snapshot_;
};

struct InputOptions {
  bool exclusive = true;  // O_EXCL on block devices, except when reading a metadata snapshot
  bool writable = false;
};

// Opens `path` and its metadata, with the input checks every reading tool shares:
// missing path, not a file or block device, XML given, smaller than a block, shorter than the
// superblock says.
Result<Metadata> open_metadata(const std::string& path, const RootSelector& root,
                               const InputOptions& opts = {});

// The input checks alone (used by tools that must look at a damaged superblock).
Result<std::unique_ptr<pdata::IoEngine>> open_input(const std::string& path,
                                                    const InputOptions& opts);

}  // namespace thinmeta::thin
