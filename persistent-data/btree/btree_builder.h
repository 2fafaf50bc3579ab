// SPDX-License-Identifier: GPL-3.0-or-later
// Bottom-up btree bulk load (FORMAT.md §5.4, "1.x style"): leaves are filled from sorted
// entries, every node full except the last two of a level (each at least half full), then the
// internal levels are built the same way from (first key, block) pairs until one root remains.
// The counting functions give the exact number of nodes beforehand, so a writer can plan its
// space before it writes anything.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "persistent-data/io/block_writer.h"
#include "persistent-data/btree/btree_node.h"

namespace thinmeta::pdata {

// Node sizes of one level of the bulk load over n > 0 entries with capacity max.
std::vector<std::uint32_t> level_sizes(std::uint64_t n, std::uint32_t max);
std::uint64_t level_nodes(std::uint64_t n, std::uint32_t max);
// Internal nodes above `leaf_level_nodes` nodes (0 when there is one: it is the root).
std::uint64_t internal_nodes(std::uint64_t leaf_level_nodes);
// Every node of a tree of n entries (an empty tree is one empty leaf).
std::uint64_t tree_nodes(std::uint64_t n, std::uint32_t leaf_value_size);

// Counts what BtreeBuilder will write at the leaf level, from entry counts alone.
class LeafLevelCounter {
 public:
  explicit LeafLevelCounter(std::uint32_t value_size) : max_(max_entries_for(value_size)) {}
  void add(std::uint64_t nr_entries);
  void add_node();  // a node written elsewhere (shared), see BtreeBuilder::add_node
  std::uint64_t pending() const { return pending_; }
  // New blocks the whole tree needs (leaves written by the builder + internal levels).
  std::uint64_t finish();

 private:
  void flush();
  std::uint32_t max_;
  std::uint64_t pending_ = 0, own_ = 0, shared_ = 0;
};

class BtreeBuilder {
 public:
  // value_size: bytes per leaf value (4, 8, 16, 24). `w` must outlive the builder.
  BtreeBuilder(BlockWriter& w, std::uint32_t value_size);

  // Entries must come in strictly ascending key order.
  void add(std::uint64_t key, const std::uint8_t* value);
  // The value little-endian in value_size bytes (cut, or zero-padded on a wider value size).
  void add_u64(std::uint64_t key, std::uint64_t value);
  void add_u32(std::uint64_t key, std::uint32_t value);
  // The same as add_u64(key + i, value + i * step) (modulo 2^64) and add_u32(key + i, value)
  // for i < n, written a leaf's room at a time (a mapping run: the data block advances in the
  // packed value; a run of blocks with one reference count).
  void add_u64_run(std::uint64_t key, std::uint64_t value, std::uint64_t step, std::uint64_t n);
  void add_u32_run(std::uint64_t key, std::uint32_t value, std::uint64_t n);
  // Appends a leaf that is already written (a shared subtree) after the pending entries, which
  // are written first. The caller keeps every non-root node at least a third full: pending()
  // must be 0 or >= min_entries(), and the node itself must hold >= min_entries() entries
  // unless it ends up as the only node.
  void add_node(std::uint64_t first_key, BlockAddr addr);
  std::uint64_t pending() const { return nr_; }
  std::uint32_t max_entries() const { return max_; }
  std::uint32_t min_entries() const { return max_ / 3; }

  // Writes the remaining leaves and the internal levels; returns the root.
  BlockAddr finish();

 private:
  template <std::uint32_t kSize, typename T, void (*kStore)(std::uint8_t*, T)>
  void add_fixed(std::uint64_t key, T value);
  template <std::uint32_t kSize, typename T, void (*kStore)(std::uint8_t*, T)>
  void add_fixed_run(std::uint64_t key, T value, T step, std::uint64_t n);
  void emit_leaf(std::uint32_t n);
  void flush();

  BlockWriter& w_;
  std::uint32_t vsize_;
  std::uint32_t max_;
  // The pending entries are [base_, base_ + nr_) of buffers of kSpan leaves: an emitted leaf
  // only moves base_, and the rest is moved down once every kSpan - 2 leaves (moving it at
  // every leaf copied each entry twice).
  static constexpr std::uint32_t kSpan = 8;
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint8_t> values_;
  std::uint32_t base_ = 0;
  std::uint32_t nr_ = 0;
  std::vector<std::pair<std::uint64_t, BlockAddr>> level_;  // (first key, block) of leaf level
};

// Encodes one node into a zeroed block and stamps its checksum.
void encode_node(std::uint8_t* block, BlockAddr addr, bool leaf, std::uint32_t value_size,
                 std::uint32_t nr, const std::uint64_t* keys, const std::uint8_t* values);

}  // namespace thinmeta::pdata
