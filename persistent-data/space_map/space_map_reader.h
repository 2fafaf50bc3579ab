// SPDX-License-Identifier: GPL-3.0-or-later
// On-disk reference counts of a space map (FORMAT.md §7): the index (metadata: one index block;
// data: an index btree), the bitmaps and the reference-count ("overflow") tree, streamed a
// bitmap at a time in block order. Used by thin_check, thin_trim and repair.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/ref_count_gather.h"
#include "persistent-data/space_map/space_map_format.h"

namespace thinmeta::pdata {

enum class SpaceMapKind { kMetadata, kData };

// Receives what the reader finds. Damage is one line naming the block.
class SpaceMapVisitor {
 public:
  virtual ~SpaceMapVisitor() = default;
  // A metadata block the space map itself occupies (index block, index btree node, bitmap,
  // reference-count tree node): one call per reference.
  virtual void uses(BlockAddr block) = 0;
  virtual void damage(const std::string& what) = 0;
};

// Where the count of one block lives on disk (for in-place fixes).
struct CountLocation {
  std::uint64_t bitmap_index;  // index entry number
  BlockAddr bitmap_block;
  std::uint64_t entry;         // entry within the bitmap
};

class SpaceMapReader {
 public:
  // Reads and checks the index; damage goes to `v`. `io` and `v` must outlive the reader.
  // `nr_metadata_blocks` bounds every metadata block address the map may use.
  SpaceMapReader(IoEngine& io, const SmRoot& root, SpaceMapKind kind, BlockAddr nr_metadata_blocks,
                 SpaceMapVisitor& v);

  std::uint64_t nr_blocks() const { return root_.nr_blocks; }
  std::uint64_t nr_bitmaps() const { return (root_.nr_blocks + kEntriesPerBitmap - 1) / kEntriesPerBitmap; }
  // Index entries, one per bitmap; a missing or unusable entry has blocknr 0.
  const std::vector<IndexEntry>& index() const { return index_; }
  // Where the index lives: the index block (metadata) or nothing (data: a btree).
  SpaceMapKind kind() const { return kind_; }

  // Reports every metadata block the map occupies to v.uses(): the index block or every index
  // btree node, each bitmap named by the index, and (unless for_each_bitmap will, see there)
  // every node of the reference-count tree.
  void count_structure(bool ref_count_tree = true);

  // Streams the counts in block order: fn(first_block, counts) once per bitmap, counts.size()
  // entries (the last bitmap is partial). Counts of 3 are completed from the reference-count
  // tree. A bitmap that cannot be read is reported to v.damage() and given to fn with
  // `valid == false` (counts are then zero). Bitmap entries beyond nr_blocks must be zero and
  // each reference-count entry must sit on a bitmap entry of 3 (damage otherwise).
  using CountsFn =
      std::function<void(std::uint64_t first_block, std::span<const std::uint32_t> counts, bool valid)>;
  // With count_ref_count_tree, the reference-count tree's nodes are reported to v.uses() as
  // they are read (saves reading that tree twice).
  // With a usable `pre` (RefCountTreeGather of this map), its counts are used instead of
  // reading the tree; the results and reports are the same.
  // With a usable `pre` and `quick`, each bitmap that reads and checks clean (checksum, block
  // number, a whole bitmap: not the last partial one) is first given to quick(first_block,
  // entries, len), `entries` being the bitmap's entry area (2 bits a block, FORMAT.md §7.3);
  // calls run on worker threads (run_parallel), concurrently and in any order. When quick
  // returns true, the bitmap is taken as done: it must hold no damage for this reader to
  // report (no entry of 3 without a tree count, no tree count on another entry) and the
  // caller must need no fn call for it (fn is not called). Others go to fn as usual, in order.
  using QuickFn =
      std::function<bool(std::uint64_t first_block, const std::uint8_t* entries, std::size_t len)>;
  void for_each_bitmap(const CountsFn& fn, bool count_ref_count_tree = false,
                       const RefCountTreeImage* pre = nullptr, const QuickFn* quick = nullptr);
  // Inside fn: true when the bitmap just given holds no non-zero count (a fast path for
  // sparsely used maps).
  bool last_bitmap_zero() const { return last_zero_; }

  std::optional<CountLocation> locate(std::uint64_t block) const;

 private:
  void read_metadata_index();
  void read_data_index();

  IoEngine& io_;
  SmRoot root_;
  SpaceMapKind kind_;
  BlockAddr nr_meta_;
  SpaceMapVisitor& v_;
  std::vector<IndexEntry> index_;
  bool last_zero_ = false;
  std::vector<BlockAddr> index_nodes_;  // data: index btree nodes (count_structure)
  bool index_ok_ = false;
};

}  // namespace thinmeta::pdata
