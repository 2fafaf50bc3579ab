// SPDX-License-Identifier: GPL-3.0-or-later
// The one read-only btree walker every tool shares: depth first, in key order, reading the
// children of each internal node as one batch. It never throws and never stops on damage:
// each unreadable or invalid subtree is reported to the visitor with the key range it hides,
// and the walk goes on. Hostile input cannot make it loop or recurse without bound: child
// keys must lie in the range their parent gives them, a block already on the current path is
// a cycle, and depth is capped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/btree/btree_node.h"
#include "persistent-data/io/io_engine.h"

namespace thinmeta::pdata {

// Keys [begin, end); end == nullopt means unbounded.
struct KeyRange {
  std::uint64_t begin = 0;
  std::optional<std::uint64_t> end;
};

struct NodeContext {
  BlockAddr addr;
  unsigned depth;  // 0 for the root
  KeyRange range;  // keys this node may hold, from its parent
};

struct Damage {
  BlockAddr addr;
  KeyRange lost;     // the keys that could not be read
  std::string what;  // one line, e.g. "bad checksum in btree node (block 10)"
};

enum class Flow { kContinue, kStop };

class BtreeVisitor {
 public:
  virtual ~BtreeVisitor() = default;
  // Before a child is read. Return false to skip it (e.g. a shared subtree already counted).
  virtual bool enter(const NodeContext&) { return true; }
  virtual Flow internal(const NodeContext&, const NodeView&) { return Flow::kContinue; }
  virtual Flow leaf(const NodeContext&, const NodeView&) = 0;
  virtual Flow damage(const Damage&) = 0;

  // Leaf work that needs nothing but the leaf (decoding) may run ahead, on the threads that
  // checksum a batch: when prepares_leaves() is true, prepare_leaf() is called for each valid
  // leaf of a batch, concurrently and in any order, with a kBlockSize area of its own; that
  // area is then passed to leaf_prepared() in walk order, on the visiting thread, instead of
  // calling leaf(). prepare_leaf() may only read state no callback changes during the walk.
  // Leaves not read in a batch (a root leaf) still go to leaf().
  virtual bool prepares_leaves() const { return false; }
  virtual void prepare_leaf(const NodeContext&, const NodeView&, std::uint8_t* /*area*/) const {}
  virtual Flow leaf_prepared(const NodeContext& c, const NodeView& n,
                             const std::uint8_t* /*area*/) {
    return leaf(c, n);
  }
};

struct WalkOptions {
  std::uint32_t leaf_value_size = 8;
  unsigned max_depth = 16;  // 84^10 > 2^64: a valid tree is never close to this
  bool check_fill = true;   // non-root nodes must hold at least max_entries / 3
};

// Walks the tree rooted at `root`. Returns kStop if the visitor stopped the walk. `io` must
// outlive the call. Memory: one batch of child blocks per level (at most 1 MiB a level).
Flow walk_btree(IoEngine& io, BlockAddr root, const WalkOptions& opts, BtreeVisitor& v);

// Everything that makes a node read at ctx unusable to a walk (checksum and self address
// unless `verified`, shape, keys inside ctx.range, fill, depth), as Damage.
std::optional<Damage> check_node(const NodeContext& ctx, const std::uint8_t* block,
                                 const WalkOptions& opts, bool verified = false);

// Reads and checks one node (checksum, self address, shape). On success `buf` holds it.
std::optional<std::string> read_node(IoEngine& io, BlockAddr addr, std::uint32_t leaf_value_size,
                                     std::uint8_t* buf);

}  // namespace thinmeta::pdata
