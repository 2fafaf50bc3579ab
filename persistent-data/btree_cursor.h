// SPDX-License-Identifier: GPL-3.0-or-later
// A pull-style cursor over a btree: it holds the spine from the root to the current node (one
// block a level, so memory grows with the height, not the tree) and moves in key order. The
// caller decides, at each unread subtree, whether to descend into it or skip it whole; that is
// what lets two trees be walked side by side while subtrees they share are handled once.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "persistent-data/block.h"
#include "persistent-data/btree_node.h"
#include "persistent-data/btree_walker.h"
#include "persistent-data/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata {

class BtreeCursor {
 public:
  enum class At { kSubtree, kEntry, kEnd };

  BtreeCursor(IoEngine& io, std::uint32_t leaf_value_size, unsigned max_depth = 16)
      : io_(io), value_size_(leaf_value_size), max_depth_(max_depth) {}

  // Positions the cursor before the tree at `root`, which may hold keys in `range`: the current
  // position is the (unread) root subtree.
  void reset(BlockAddr root, KeyRange range = {});

  At at() const;
  // At kSubtree: the unread child, the lowest key it may hold and its key range.
  BlockAddr subtree() const;
  std::uint64_t subtree_lo() const { return subtree_range().begin; }
  KeyRange subtree_range() const;
  unsigned subtree_depth() const { return root_pending_ ? 0 : static_cast<unsigned>(depth_); }
  // At kEntry: the current leaf and the entry in it.
  NodeView leaf() const { return NodeView(frames_[depth_ - 1].buf.data()); }
  std::uint32_t index() const { return frames_[depth_ - 1].index; }
  std::uint64_t key() const { return leaf().key(index()); }
  std::uint64_t value64() const { return leaf().value64(index()); }

  // Reads the current subtree and stands on its first child or entry. Damage (bad checksum,
  // wrong shape, keys outside the range the parent gives, a cycle, too deep) is an error
  // with Errc::kDamage naming the block.
  Result<> descend();
  // Moves past the current subtree (unread) or entry.
  void skip();
  // At kEntry: moves to entry `i` of the current leaf (i >= index(); nr_entries() = past it).
  void seek_in_leaf(std::uint32_t i);
  // Moves past the rest of the current leaf.
  void skip_leaf();
  // Convenience for plain walks: descends until it stands on a leaf entry (skipping empty
  // leaves) and returns that leaf, index() == 0; nullopt at the end. Call skip_leaf() after.
  Result<std::optional<NodeView>> next_leaf();

 private:
  struct Frame {
    AlignedBuffer buf;
    BlockAddr addr = 0;
    KeyRange range;
    std::uint32_t index = 0;
    std::uint32_t nr = 0;
    bool is_leaf = false;
    // Children read ahead: blocks [ahead_first, ahead_first + ahead_n) in `ahead`.
    AlignedBuffer ahead;
    BlockAddr ahead_first = 0;
    std::uint32_t ahead_n = 0;
  };
  // Reads child `addr` of the spine's deepest node into `out`, reading ahead the following
  // children when they sit in consecutive blocks (one large read instead of many small ones;
  // children elsewhere are never read ahead, so skipped subtrees stay unread).
  std::optional<std::string> read_child(BlockAddr addr, std::uint8_t* out);
  void pop_exhausted();
  Result<> damage(BlockAddr b, const std::string& what) const;

  IoEngine& io_;
  std::uint32_t value_size_;
  unsigned max_depth_;
  BlockAddr root_ = 0;
  KeyRange root_range_;
  bool root_pending_ = false;
  std::vector<Frame> frames_;  // frames_[0..depth_) is the spine; deeper ones keep buffers
  std::size_t depth_ = 0;
};

}  // namespace thinmeta::pdata
