// SPDX-License-Identifier: GPL-3.0-or-later
// Repair's choice of trees, strongest evidence first: the superblock's roots when they walk
// cleanly; otherwise the best consistent pair of details / top-level roots found by scanning
// the device (same device ids, matching mapped_blocks, allocated in the metadata space map,
// newest transaction and time), with per-device fallbacks for subtree roots the top level lost
// and the held metadata snapshot as a second source. The details tree chosen decides which
// devices exist: a device it does not list is never brought back.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "thin/device_details.h"
#include "thin/repair/node_scan.h"
#include "thin/repair/orphans.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

struct RecoveredDevice {
  DeviceDetails details;
  bool details_synthesized = false;     // no details entry survived
  bool details_older = false;           // taken from an older copy (the held snapshot's)
  std::optional<BlockAddr> root;        // the device's mapping tree
  bool root_from_snapshot = false;      // `root` is the held snapshot's tree of this device
  std::optional<BlockAddr> snapshot_root;  // the held snapshot's tree (second source)
};

struct RecoveredRoots {
  std::map<std::uint64_t, RecoveredDevice> devices;
  std::optional<SuperblockCopy> held;   // the metadata snapshot consulted, if any
  std::optional<BlockAddr> details_root, mapping_root;  // chosen (for messages and tests)
  bool searched = false;                // the device was scanned
  std::uint32_t max_time = 0;           // newest time in the chosen details / snapshot copy
  std::uint32_t held_data_block_size = 0;  // from superblock copies (0: none agree)
  std::vector<std::string> notes;       // one line each, for stderr
  std::shared_ptr<const NodeScan> scan;  // when the device was scanned
  // Orphaned subtrees (orphans.h), when looked for; see find_orphans.
  std::shared_ptr<const Orphans> orphans;
  bool orphans_searched = false;
};

struct RootSearchOptions {
  // The held snapshot's trees stand in for a device whose live tree is lost.
  bool use_snapshot = false;
  // `sb` holds the fields of a superblock that failed validation: a root pointer in it may be
  // the damaged field, so its two roots are only taken together when they list the same
  // devices.
  bool superblock_damaged = false;
};

// `sb` is the superblock at block 0, if it could be read (or the fields of a damaged one that
// agree with the device). Fails with "no compatible roots found" when nothing usable is left.
Result<RecoveredRoots> find_roots(pdata::IoEngine& io, const std::optional<Superblock>& sb,
                                  const RootSearchOptions& opts = {});

// Looks for orphaned subtrees once (scanning the device if it was not) and keeps them in
// `roots`; nullptr when there is no metadata space map to take the evidence from.
const Orphans* find_orphans(pdata::IoEngine& io, const std::optional<Superblock>& sb,
                            RecoveredRoots& roots);

}  // namespace thinmeta::thin
