// SPDX-License-Identifier: GPL-3.0-or-later
// Orphaned subtrees: the valid nodes that only a damaged node referenced. The metadata space
// map counts every reference to every block; the intact nodes of the live trees and of the
// held metadata snapshot's trees (and the superblocks' roots) explain some of them. A valid
// node whose count exceeds what the intact nodes explain was a child of a damaged node: it is
// put back in that node's place, in every live device tree that reached the damaged node
// (its key range must fit the range the damaged node covered, and only one damaged node may
// fit). A node that only the held snapshot's trees reach has no unexplained reference (an
// older version the live tree replaced) and a node the space map counts 0 is an old copy:
// neither is ever taken. Device roots a damaged top-level node held are matched to the
// devices it lost by the device details' mapped_blocks (one candidate each, or none).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "thin/device_details.h"
#include "thin/repair/node_scan.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

struct TreeRoots {
  BlockAddr top = 0;      // top level of the mapping tree (0: none)
  BlockAddr details = 0;  // device-details tree (0: none)
};

class Orphans {
 public:
  // `live` and `held` (the held snapshot's roots, if any) are the trees whose intact nodes
  // explain references; `metadata_sm` the live superblock's metadata space map; `details`
  // the devices known (for matching device roots a damaged top level held). Nothing when the
  // space map cannot be read (its counts are the evidence).
  static std::optional<Orphans> find(pdata::IoEngine& io, const NodeScan& scan,
                                     const pdata::SmRoot& metadata_sm, const TreeRoots& live,
                                     const std::optional<TreeRoots>& held,
                                     const std::map<std::uint64_t, DeviceDetails>& details);

  // The orphan subtree roots to put in place of damaged node `damaged` of device `dev`'s
  // live mapping tree, in key order (empty: none found).
  std::vector<BlockAddr> grafts(std::uint64_t dev, BlockAddr damaged) const;
  // The mapping tree of a device whose top-level entry was lost with a damaged top-level node.
  std::optional<BlockAddr> device_root(std::uint64_t dev) const;
  // Leaves of the device-details tree that a damaged details node held.
  const std::vector<BlockAddr>& details_leaves() const { return details_leaves_; }
  // What was put back where and what stays lost as ambiguous, one line each.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::map<std::pair<std::uint64_t, BlockAddr>, std::vector<BlockAddr>> grafts_;
  std::map<std::uint64_t, BlockAddr> device_roots_;
  std::vector<BlockAddr> details_leaves_;
  std::vector<std::string> notes_;
};

}  // namespace thinmeta::thin
