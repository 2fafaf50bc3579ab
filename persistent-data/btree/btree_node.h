// SPDX-License-Identifier: GPL-3.0-or-later
// A read-only view of a btree node block and its structural checks (FORMAT.md §5).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/io/block.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {

inline constexpr std::uint32_t kNodeInternal = 1;
inline constexpr std::uint32_t kNodeLeaf = 2;
inline constexpr std::size_t kNodeHeaderSize = 32;

// Capacity for a value size, rounded down to a multiple of 3 (FORMAT.md §5.1).
constexpr std::uint32_t max_entries_for(std::uint32_t value_size) {
  return 3 * (static_cast<std::uint32_t>((kBlockSize - kNodeHeaderSize) / (8 + value_size)) / 3);
}

class NodeView {
 public:
  explicit NodeView(const std::uint8_t* block) : b_(block) {}
  std::uint32_t flags() const { return load_le32(b_ + 4); }
  bool is_internal() const { return flags() == kNodeInternal; }
  bool is_leaf() const { return flags() == kNodeLeaf; }
  BlockAddr blocknr() const { return load_le64(b_ + 8); }
  std::uint32_t nr_entries() const { return load_le32(b_ + 16); }
  std::uint32_t max_entries() const { return load_le32(b_ + 20); }
  std::uint32_t value_size() const { return load_le32(b_ + 24); }
  std::uint64_t key(std::uint32_t i) const { return load_le64(b_ + kNodeHeaderSize + 8ull * i); }
  // Values start after all max_entries key slots, not after nr_entries of them.
  const std::uint8_t* value(std::uint32_t i) const {
    return b_ + kNodeHeaderSize + 8ull * max_entries() + std::uint64_t{value_size()} * i;
  }
  std::uint64_t value64(std::uint32_t i) const { return load_le64(value(i)); }
  const std::uint8_t* raw() const { return b_; }

 private:
  const std::uint8_t* b_;
};

// Whether the nr little-endian 64-bit keys at `keys` ascend strictly. SIMD where the CPU has
// it; `portable` forces the plain loop (tests compare the two).
bool keys_ascend(const std::uint8_t* keys, std::uint32_t nr, bool portable = false);

// Header checks that need nothing but the node itself and the expected leaf value size:
// node type, value size (8 for internal nodes), max_entries within the block and a multiple of
// 3, nr_entries <= max_entries, keys strictly ascending. Returns the damage, if any.
std::optional<std::string> check_node_shape(const NodeView& n, BlockAddr where,
                                            std::uint32_t leaf_value_size);

}  // namespace thinmeta::pdata
