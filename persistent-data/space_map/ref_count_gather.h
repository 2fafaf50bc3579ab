// SPDX-License-Identifier: GPL-3.0-or-later
// A space map's reference-count tree gathered from other reads (thin_check). 0.9.0's restore
// interleaves the data map's count leaves with the mapping leaves, and the engines read the
// blocks between two nearby requests anyway to join them (io_plan.h): so the mapping walk
// reads most count leaves already, and a walk of the count tree after it would read the same
// region again (+200 MiB on a 16-million-mapping pool). Here the tree's internal nodes (a few
// dozen blocks) are read first, which names the leaves; while the mapping trees are walked the
// engine hands over the leaves its gaps cover (GapSink); the rest are read at the end, in
// address order. The result is an image of the tree's counts for SpaceMapReader.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/ref_counts.h"
#include "persistent-data/space_map/space_map_format.h"

namespace thinmeta::pdata {

// A reference-count tree read ahead of SpaceMapReader::for_each_bitmap.
struct RefCountTreeImage {
  // The tree was read whole and valid: no damage, every leaf at one depth, every entry a
  // count >= 3 of a block inside the map, every node inside the metadata device. Otherwise
  // for_each_bitmap walks the tree itself, as without an image, and reports what is wrong
  // in the usual order.
  bool usable = false;
  std::vector<BlockAddr> nodes;  // every node of the tree, once per reference
  RefCounts counts;              // block -> count, for every entry
};

class RefCountTreeGather final : public GapSink {
 public:
  // Trees with more leaves than this are walked as usual: the image (a byte or so a block
  // with a count >= 3, ~25 MiB at this size) would double what the check's own counts take.
  static constexpr std::size_t kMaxLeaves = 1u << 16;

  // Reads the internal nodes of the tree at root.ref_count_root (on this thread).
  RefCountTreeGather(IoEngine& io, const SmRoot& root, BlockAddr nr_metadata_blocks);

  // False when the tree cannot be gathered (damage in its internal nodes, too big): then
  // finish() returns an unusable image and nothing is worth giving to take().
  bool active() const { return ok_; }

  bool wants(BlockAddr b) const override;
  void take(BlockAddr b, const std::uint8_t* block) override;

  // Reads the leaves no other read brought and returns the image. Call once, after the
  // engine stopped feeding this sink.
  RefCountTreeImage finish();

  // Leaves taken from other reads so far (for tests and measurements).
  std::size_t nr_taken() const;

 private:
  struct Leaf {
    BlockAddr addr;
    KeyRange range;
  };
  enum : std::uint8_t { kPendingLeaf = 0, kDone = 1, kBad = 2 };
  // The leaf at b, or npos.
  std::size_t find(BlockAddr b) const;
  // Checks and applies one leaf (mu_ held).
  void apply(std::size_t leaf, const std::uint8_t* block);
  // Whether the block passes leaf i's node checks (any thread).
  bool node_ok(std::size_t leaf, const std::uint8_t* block) const;
  // Applies leaf i's entries, its node checked (mu_ held).
  void apply_checked(std::size_t leaf, const std::uint8_t* block);

  static constexpr std::size_t npos = ~std::size_t{0};
  IoEngine& io_;
  std::uint64_t nr_blocks_;  // of the space map: keys must be below
  unsigned leaf_depth_ = 0;
  bool ok_ = false;
  std::vector<Leaf> leaves_;                           // in key order
  std::vector<std::pair<BlockAddr, std::size_t>> by_addr_;  // sorted, for take()
  std::vector<std::uint64_t> is_leaf_;                 // a bit a metadata block, for wants()
  mutable std::mutex mu_;
  std::vector<std::uint8_t> state_;  // per leaf
  std::size_t taken_ = 0;
  RefCountTreeImage img_;
};

}  // namespace thinmeta::pdata
