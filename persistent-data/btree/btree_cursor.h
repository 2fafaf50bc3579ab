// SPDX-License-Identifier: GPL-3.0-or-later
// A pull-style cursor over a btree: it holds the spine from the root to the current node (one
// block a level, so memory grows with the height, not the tree) and moves in key order. The
// caller decides, at each unread subtree, whether to descend into it or skip it whole; that is
// what lets two trees be walked side by side while subtrees they share are handled once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "persistent-data/io/block.h"
#include "persistent-data/btree/btree_node.h"
#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata {

class BtreeCursor {
 public:
  enum class At { kSubtree, kEntry, kEnd };

  BtreeCursor(IoEngine& io, std::uint32_t leaf_value_size, unsigned max_depth = 16)
      : io_(io), value_size_(leaf_value_size), max_depth_(max_depth), lane_(next_lane()) {}

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
  NodeView leaf() const { return NodeView(frames_[depth_ - 1].node); }
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
  // Children read ahead on the helper thread. Everything but `valid` and `done` belongs to
  // the job until `done` has been waited for.
  struct Group {
    std::vector<BlockAddr> addrs;
    std::vector<int> errs;
    AlignedBuffer buf;
    BlockAddr owner = 0;      // the node whose children these are
    bool read_owner = false;  // the job reads the owner first (into owner_buf) and picks the
                              // children from it (addrs empty if it cannot)
    AlignedBuffer owner_buf;
    int owner_err = 0;
    std::uint32_t from = 0, max = 0;  // the children wanted: from index `from`, up to `max`
    std::uint32_t end = 0;    // index (in owner) after the last child read
    Pending<void> done;       // valid while it is being read
    bool valid = false;
  };
  struct Frame {
    // The node's bytes: in buf (a node read on its own, or taken from a group's owner_buf)
    // or, without a copy, in the parent's `ahead` batch, which stays as it is until the
    // cursor reads the parent's next child (by then this frame holds that child).
    const std::uint8_t* node = nullptr;
    AlignedBuffer buf;
    BlockAddr addr = 0;
    KeyRange range;
    std::uint32_t index = 0;
    std::uint32_t nr = 0;
    bool is_leaf = false;
    // Children read ahead: ahead_addrs[i] in ahead.block(i), ascending, for i < ahead_n;
    // they are the children at indices ahead_end - ahead_addrs.size() .. ahead_end - 1 (in
    // this node), child index x at position x - (ahead_end - ahead_addrs.size()).
    AlignedBuffer ahead;
    std::vector<BlockAddr> ahead_addrs;
    std::uint32_t ahead_n = 0, ahead_end = 0;
    // How many of them were read from there, and the size of the next group: it doubles
    // (up to a node's worth) while every child of a group is used, as in a walk of a tree
    // that shares nothing, and falls back to a few when some are skipped (shared subtrees).
    std::uint32_t ahead_used = 0, group = 0;
    // The group after it, being read on the helper thread (heap: frames_ may move): the
    // next children of this node, or the first ones of the node's next sibling (owner).
    std::unique_ptr<Group> next;
  };
  // Reads child `addr` of the spine's deepest node into `out`, reading ahead the following
  // children when they sit close after it (ascending, a few blocks apart at most: one large
  // read instead of many small ones; children elsewhere are never read ahead). While groups
  // are used whole they grow, and halfway through one the next (of this node, or the first
  // of its next sibling when the parent has that sibling in memory) is read on the helper
  // thread as the cursor goes on; once a child is skipped, groups are small again, so a walk
  // that skips shared subtrees reads little it does not use.
  // The child is frame `f` (frames_[depth_]): f.node is set to its bytes, checked.
  std::optional<std::string> read_child(BlockAddr addr, Frame& f);
  // The children of node n (nr entries) from index `from` that one read covers (at most
  // `max`, all below nr_blocks); returns the index after the last.
  static std::uint32_t form_group(const NodeView& n, std::uint32_t nr, std::uint32_t from,
                                  std::uint32_t max, BlockAddr nr_blocks,
                                  std::vector<BlockAddr>& addrs);
  // The size of frame p's next group, from how its current one was used.
  static void next_group_size(Frame& p);
  // Starts reading the group after frames_[depth_ - 1]'s current one on the helper thread.
  void read_next_group();
  // Waits for frame p's group read ahead; true if it is for p's node and holds addr.
  bool take_next_group(Frame& p, BlockAddr addr);
  void pop_exhausted();
  Result<> damage(BlockAddr b, const std::string& what) const;

  // Cursors take the helper lanes in turn: two cursors walked side by side read ahead on
  // two threads, each with its request in flight.
  static unsigned next_lane();

  IoEngine& io_;
  std::uint32_t value_size_;
  unsigned max_depth_;
  unsigned lane_;
  BlockAddr root_ = 0;
  KeyRange root_range_;
  bool root_pending_ = false;
  std::vector<Frame> frames_;  // frames_[0..depth_) is the spine; deeper ones keep buffers
  std::size_t depth_ = 0;
};

}  // namespace thinmeta::pdata
