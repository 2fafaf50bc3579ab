// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "persistent-data/btree/btree_node.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {
namespace {

bool model(const std::vector<std::uint64_t>& k) {
  for (std::size_t i = 1; i < k.size(); ++i)
    if (k[i] <= k[i - 1]) return false;
  return true;
}

bool ascend(const std::vector<std::uint64_t>& k, bool portable) {
  std::vector<std::uint8_t> raw(8 * k.size() + 8);
  for (std::size_t i = 0; i < k.size(); ++i) store_le64(raw.data() + 8 * i, k[i]);
  return keys_ascend(raw.data(), static_cast<std::uint32_t>(k.size()), portable);
}

// The SIMD key-order check against the plain loop and a model: every count of keys a node
// can hold, ascending keys around 0, 2^63 (where a signed compare goes wrong) and 2^64, each
// broken once at every position (equal, smaller, or smaller only as unsigned numbers).
TEST(BtreeNode, KeysAscendAgreesWithTheModel) {
  std::mt19937_64 rng(18);
  constexpr std::uint32_t kMaxKeys = (kBlockSize - kNodeHeaderSize) / 8;
  std::size_t broken = 0;
  for (std::uint32_t nr = 0; nr <= kMaxKeys; nr += nr < 40 ? 1 : 13) {
    for (std::uint64_t base : {0ull, (1ull << 63) - nr / 2, ~0ull - 2 * nr}) {
      std::vector<std::uint64_t> k(nr);
      std::uint64_t at = base;
      for (auto& x : k) x = at, at += 1 + (base == 0 ? rng() % 1000 : 0);
      ASSERT_TRUE(model(k));
      ASSERT_TRUE(ascend(k, false)) << nr << " " << base;
      ASSERT_TRUE(ascend(k, true)) << nr << " " << base;
      for (std::uint32_t i = 1; i < nr; ++i) {
        for (int how = 0; how < 3; ++how) {
          auto b = k;
          if (how == 0) b[i] = b[i - 1];
          if (how == 1) b[i] = b[i - 1] - 1 - rng() % 3;
          if (how == 2) b[i - 1] = 1ull << 63, b[i] = (1ull << 63) - 1;  // signed: ascending
          bool want = model(b);
          ASSERT_EQ(ascend(b, false), want) << nr << " " << i << " " << how;
          ASSERT_EQ(ascend(b, true), want) << nr << " " << i << " " << how;
          broken += !want;
        }
      }
    }
  }
  EXPECT_GT(broken, 10000u);
}

TEST(BtreeNode, ShapeReportsKeysOutOfOrder) {
  std::vector<std::uint8_t> block(kBlockSize, 0);
  store_le32(block.data() + 4, kNodeLeaf);
  store_le32(block.data() + 16, 100);  // nr_entries
  store_le32(block.data() + 20, max_entries_for(8));
  store_le32(block.data() + 24, 8);
  for (std::uint32_t i = 0; i < 100; ++i) store_le64(block.data() + kNodeHeaderSize + 8 * i, i);
  EXPECT_FALSE(check_node_shape(NodeView(block.data()), 7, 8));
  store_le64(block.data() + kNodeHeaderSize + 8 * 57, 55);
  auto d = check_node_shape(NodeView(block.data()), 7, 8);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, "keys out of order in btree node (block 7)");
}

}  // namespace
}  // namespace thinmeta::pdata
