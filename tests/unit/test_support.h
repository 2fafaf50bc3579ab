// SPDX-License-Identifier: GPL-3.0-or-later
// Test-only helpers: hand-built btree nodes in a memory engine.
#pragma once

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "persistent-data/btree/btree_node.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/space_map_reader.h"

#include <unistd.h>

namespace thinmeta::test {

using pdata::BlockAddr;

// Records what a SpaceMapReader reports.
struct SmCollect final : pdata::SpaceMapVisitor {
  void uses(BlockAddr b) override { used[b]++; }
  void damage(const std::string& what) override { damages.push_back(what); }
  std::map<BlockAddr, int> used;
  std::vector<std::string> damages;
};

// Writes a temporary image file (mkstemp on `tmpl`, its name into *path) of `blocks` blocks,
// each filled with its own address 8 bytes at a time; with `mark`, byte 7 of block b is b * 31,
// so a block read from the wrong address never passes for the right one.
inline void write_pattern_image(std::string tmpl, BlockAddr blocks, bool mark, std::string* path) {
  int fd = ::mkstemp(tmpl.data());
  ASSERT_GE(fd, 0);
  *path = tmpl;
  std::vector<std::uint8_t> block(pdata::kBlockSize);
  for (BlockAddr b = 0; b < blocks; ++b) {
    for (std::size_t i = 0; i < pdata::kBlockSize; i += 8) std::memcpy(&block[i], &b, 8);
    if (mark) block[7] = static_cast<std::uint8_t>(b * 31);
    ASSERT_EQ(::pwrite(fd, block.data(), pdata::kBlockSize,
                       static_cast<off_t>(b * pdata::kBlockSize)),
              static_cast<ssize_t>(pdata::kBlockSize));
  }
  ::close(fd);
}

// Writes one node with the given keys and 8-byte values at `at`.
inline void put_node(pdata::IoEngine& io, BlockAddr at, bool leaf,
                     const std::vector<std::pair<std::uint64_t, std::uint64_t>>& entries,
                     std::uint32_t value_size = 8) {
  pdata::AlignedBuffer b(1);
  std::uint8_t* p = b.data();
  std::uint32_t max = pdata::max_entries_for(value_size);
  pdata::store_le32(p + 4, leaf ? pdata::kNodeLeaf : pdata::kNodeInternal);
  pdata::store_le64(p + 8, at);
  pdata::store_le32(p + 16, static_cast<std::uint32_t>(entries.size()));
  pdata::store_le32(p + 20, max);
  pdata::store_le32(p + 24, value_size);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    pdata::store_le64(p + 32 + 8 * i, entries[i].first);
    std::uint8_t* v = p + 32 + 8 * max + value_size * i;
    if (value_size >= 8)
      pdata::store_le64(v, entries[i].second);
    else
      pdata::store_le32(v, static_cast<std::uint32_t>(entries[i].second));
  }
  pdata::stamp_checksum(p, pdata::BlockKind::kNode);
  ASSERT_TRUE(io.write(at, p).has_value());
}

// Applies f to block `at` and, if restamp, recomputes its node checksum.
template <typename F>
void mutate_block(pdata::IoEngine& io, BlockAddr at, F f, bool restamp = true) {
  pdata::AlignedBuffer b(1);
  ASSERT_TRUE(io.read(at, b.data()).has_value());
  f(b.data());
  if (restamp) pdata::stamp_checksum(b.data(), pdata::BlockKind::kNode);
  ASSERT_TRUE(io.write(at, b.data()).has_value());
}

// A two-level tree: leaves of `per_leaf` consecutive keys (value = key * 10) under a root at 1.
// Leaves live at blocks 2.. . Returns the leaf addresses.
inline std::vector<BlockAddr> two_level_tree(pdata::IoEngine& io, unsigned nr_leaves,
                                             unsigned per_leaf) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> root;
  std::vector<BlockAddr> leaves;
  for (unsigned l = 0; l < nr_leaves; ++l) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
    for (unsigned k = 0; k < per_leaf; ++k) {
      std::uint64_t key = std::uint64_t{l} * per_leaf + k;
      e.emplace_back(key, key * 10);
    }
    BlockAddr at = 2 + l;
    put_node(io, at, true, e);
    root.emplace_back(e.front().first, at);
    leaves.push_back(at);
  }
  put_node(io, 1, false, root);
  return leaves;
}

}  // namespace thinmeta::test
