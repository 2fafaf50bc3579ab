// SPDX-License-Identifier: GPL-3.0-or-later
// Repair's view of a damaged metadata device: every block is read (in large batches) and
// identified by its checksum salt (FORMAT.md §3); valid btree nodes are classified by tree
// (details, top level or bottom level of the mapping tree) and the roots no valid node
// references become candidates; superblock copies and metadata space-map index blocks found on
// the way are kept for the choice of the newest trees.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

enum class TreeKind : std::uint8_t {
  kUnknown,   // not classified (e.g. an internal node whose children are all unreadable)
  kConflict,  // children of different kinds
  kDetails,   // device-details tree
  kTop,       // top level of the mapping tree (dev id -> subtree root)
  kBottom,    // a device's mapping tree
  kOther,     // space-map trees (value sizes 16 and 4)
};

struct ScannedNode {
  std::uint32_t nr = 0;
  std::uint32_t value_size = 0;
  bool internal = false;
  bool referenced = false;  // by a valid internal node of the same kind
  std::uint64_t first_key = 0, last_key = 0;  // nr > 0
  TreeKind kind = TreeKind::kUnknown;
  // Internal nodes: the children. Value-size-8 leaves: the values, when every one of them is
  // a distinct block number of this device (a top-level leaf candidate); else empty.
  std::vector<BlockAddr> ptrs;
  std::vector<std::uint64_t> keys;  // the keys of the entries `ptrs` holds
};

struct SuperblockCopy {
  BlockAddr where = 0;
  Superblock sb;
};

class NodeScan {
 public:
  // Reads blocks [0, nr_blocks) of `io`. Unreadable blocks are skipped.
  static NodeScan run(pdata::IoEngine& io, BlockAddr nr_blocks);

  const ScannedNode* node(BlockAddr b) const;
  TreeKind kind(BlockAddr b) const;
  // Nodes of `kind` that no valid internal node of that kind references, ascending.
  std::vector<BlockAddr> roots(TreeKind kind) const;
  // Leaves of `kind`, ascending (for lookups when the tree above them is damaged).
  std::vector<BlockAddr> leaves(TreeKind kind) const;
  // Superblock-format blocks at their own location, other than block 0 (metadata snapshots,
  // current or released).
  const std::vector<SuperblockCopy>& superblock_copies() const { return sb_copies_; }
  // Metadata space-map index blocks at their own location (the current one and stale copies).
  const std::vector<BlockAddr>& index_blocks() const { return index_blocks_; }
  // Every valid node, in no particular order.
  const std::unordered_map<BlockAddr, ScannedNode>& nodes() const { return nodes_; }

 private:
  void add_node(BlockAddr b, const std::uint8_t* block, BlockAddr nr_blocks);
  void classify();
  TreeKind internal_kind(const ScannedNode& n) const;

  std::unordered_map<BlockAddr, ScannedNode> nodes_;
  std::vector<SuperblockCopy> sb_copies_;
  std::vector<BlockAddr> index_blocks_;
};

}  // namespace thinmeta::thin
