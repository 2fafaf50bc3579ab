// SPDX-License-Identifier: GPL-3.0-or-later
// The shared walker on hand-built and corrupted trees: order, damage ranges, hostile shapes.
#include <gtest/gtest.h>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/endian.h"
#include "tests/unit/test_support.h"

using namespace thinmeta;
using namespace thinmeta::pdata;

namespace {

struct Collect : BtreeVisitor {
  std::vector<std::uint64_t> keys;
  std::vector<Damage> damage_seen;
  unsigned batches = 0;
  Flow internal(const NodeContext&, const NodeView&) override {
    ++batches;
    return Flow::kContinue;
  }
  Flow leaf(const NodeContext&, const NodeView& n) override {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
      keys.push_back(n.key(i));
      EXPECT_EQ(n.value64(i), n.key(i) * 10);
    }
    return Flow::kContinue;
  }
  Flow damage(const Damage& d) override {
    damage_seen.push_back(d);
    return Flow::kContinue;
  }
};

WalkOptions opts() {
  WalkOptions o;
  o.leaf_value_size = 8;
  return o;
}

}  // namespace

TEST(BtreeWalker, VisitsEveryKeyInOrder) {
  auto io = make_memory_engine(64);
  test::two_level_tree(*io, 10, 100);
  Collect c;
  EXPECT_EQ(walk_btree(*io, 1, opts(), c), Flow::kContinue);
  ASSERT_EQ(c.keys.size(), 1000u);
  for (std::size_t i = 0; i < c.keys.size(); ++i) EXPECT_EQ(c.keys[i], i);
  EXPECT_TRUE(c.damage_seen.empty());
}

TEST(BtreeWalker, BadChecksumLosesExactlyThatLeafsRange) {
  auto io = make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 10, 100);
  test::mutate_block(*io, leaves[4], [](std::uint8_t* b) { b[200] ^= 1; }, false);
  Collect c;
  walk_btree(*io, 1, opts(), c);
  EXPECT_EQ(c.keys.size(), 900u);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_EQ(c.damage_seen[0].addr, leaves[4]);
  EXPECT_EQ(c.damage_seen[0].lost.begin, 400u);
  EXPECT_EQ(c.damage_seen[0].lost.end, std::optional<std::uint64_t>(500));
  EXPECT_NE(c.damage_seen[0].what.find("bad checksum"), std::string::npos);
}

TEST(BtreeWalker, WrongSelfBlockNumber) {
  auto io = make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 3, 100);
  test::mutate_block(*io, leaves[1], [](std::uint8_t* b) { store_le64(b + 8, 50); });
  Collect c;
  walk_btree(*io, 1, opts(), c);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_NE(c.damage_seen[0].what.find("bad block number"), std::string::npos);
}

TEST(BtreeWalker, KeysOutOfOrderAndOutsideParentRange) {
  auto io = make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 3, 100);
  test::mutate_block(*io, leaves[1], [](std::uint8_t* b) { store_le64(b + 32 + 8 * 5, 1); });
  test::mutate_block(*io, leaves[2], [](std::uint8_t* b) { store_le64(b + 32, 150); });
  Collect c;
  walk_btree(*io, 1, opts(), c);
  ASSERT_EQ(c.damage_seen.size(), 2u);
  EXPECT_NE(c.damage_seen[0].what.find("keys out of order"), std::string::npos);
  EXPECT_NE(c.damage_seen[1].what.find("outside the range"), std::string::npos);
}

TEST(BtreeWalker, NrEntriesAboveMax) {
  auto io = make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 3, 100);
  test::mutate_block(*io, leaves[0], [](std::uint8_t* b) { store_le32(b + 16, 253); });
  Collect c;
  walk_btree(*io, 1, opts(), c);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_NE(c.damage_seen[0].what.find("nr_entries"), std::string::npos);
}

TEST(BtreeWalker, ChildBeyondTheDevice) {
  auto io = make_memory_engine(64);
  test::two_level_tree(*io, 3, 100);
  test::mutate_block(*io, 1, [](std::uint8_t* b) { store_le64(b + 32 + 8 * 252 + 8, 1000000); });
  Collect c;
  walk_btree(*io, 1, opts(), c);
  EXPECT_EQ(c.keys.size(), 200u);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_NE(c.damage_seen[0].what.find("beyond the end"), std::string::npos);
}

TEST(BtreeWalker, CycleIsReportedNotFollowed) {
  auto io = make_memory_engine(64);
  test::two_level_tree(*io, 3, 100);
  // The root's second child points back at the root.
  test::mutate_block(*io, 1, [](std::uint8_t* b) { store_le64(b + 32 + 8 * 252 + 8, 1); });
  Collect c;
  walk_btree(*io, 1, opts(), c);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_NE(c.damage_seen[0].what.find("cycle"), std::string::npos);
}

TEST(BtreeWalker, AbsurdDepthIsBounded) {
  // A chain of internal nodes, each with one child: deeper than any valid tree.
  auto io = make_memory_engine(128);
  for (BlockAddr b = 1; b < 100; ++b) test::put_node(*io, b, false, {{0, b + 1}});
  test::put_node(*io, 100, true, {{0, 0}});
  Collect c;
  WalkOptions o = opts();
  o.check_fill = false;
  walk_btree(*io, 1, o, c);
  ASSERT_EQ(c.damage_seen.size(), 1u);
  EXPECT_NE(c.damage_seen[0].what.find("too deep"), std::string::npos);
}

TEST(BtreeWalker, UnderfilledNonRootNode) {
  auto io = make_memory_engine(64);
  test::two_level_tree(*io, 3, 10);  // 10 < 252 / 3
  Collect c;
  walk_btree(*io, 1, opts(), c);
  EXPECT_EQ(c.damage_seen.size(), 3u);
  WalkOptions o = opts();
  o.check_fill = false;
  Collect c2;
  walk_btree(*io, 1, o, c2);
  EXPECT_TRUE(c2.damage_seen.empty());
  EXPECT_EQ(c2.keys.size(), 30u);
}

TEST(BtreeWalker, EnterCanSkipSubtrees) {
  auto io = make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 4, 100);
  struct Skip : Collect {
    BlockAddr skip;
    bool enter(const NodeContext& c) override { return c.addr != skip; }
  } v;
  v.skip = leaves[2];
  walk_btree(*io, 1, opts(), v);
  EXPECT_EQ(v.keys.size(), 300u);
}

TEST(BtreeWalker, StopEndsTheWalk) {
  auto io = make_memory_engine(64);
  test::two_level_tree(*io, 4, 100);
  struct Stopper : Collect {
    Flow leaf(const NodeContext& c, const NodeView& n) override {
      Collect::leaf(c, n);
      return Flow::kStop;
    }
  } v;
  EXPECT_EQ(walk_btree(*io, 1, opts(), v), Flow::kStop);
  EXPECT_EQ(v.keys.size(), 100u);
}

// A batch of 200 leaves is cut into slices checksummed (and read) by several worker threads
// (THINMETA_THREADS, else the cores): the damage found and the order of the visits are those
// of one thread.
TEST(BtreeWalker, WideBatchSplitOverWorkersKeepsOrderAndDamage) {
  auto io = make_memory_engine(256);
  auto leaves = test::two_level_tree(*io, 200, 3);
  for (unsigned l : {0u, 63u, 64u, 150u, 199u})
    test::mutate_block(*io, leaves[l], [](std::uint8_t* b) { b[100] ^= 1; }, false);
  Collect c;
  WalkOptions o = opts();
  o.check_fill = false;  // leaves of 3 entries
  walk_btree(*io, 1, o, c);
  ASSERT_EQ(c.keys.size(), 195u * 3);
  for (std::size_t i = 1; i < c.keys.size(); ++i) EXPECT_LT(c.keys[i - 1], c.keys[i]);
  ASSERT_EQ(c.damage_seen.size(), 5u);
  std::vector<std::uint64_t> lost;
  for (const auto& d : c.damage_seen) lost.push_back(d.lost.begin);
  EXPECT_EQ(lost, (std::vector<std::uint64_t>{0, 189, 192, 450, 597}));
}

// A visitor that prepares its leaves (on the threads that checksum them) is handed each
// prepared area with its own leaf, in walk order; damaged leaves (bad checksum, keys outside
// their range) are never prepared and are reported as without preparing; a root leaf, read
// alone, goes to leaf().
TEST(BtreeWalker, PreparedLeavesArriveInOrderWithTheirOwnArea) {
  struct Prep : Collect {
    bool prepares_leaves() const override { return true; }
    void prepare_leaf(const NodeContext& c, const NodeView& n, std::uint8_t* area) const override {
      store_le64(area, c.addr);
      store_le64(area + 8, n.nr_entries() ? n.key(0) : ~0ull);
      store_le64(area + kBlockSize - 8, c.range.begin);
    }
    Flow leaf_prepared(const NodeContext& c, const NodeView& n, const std::uint8_t* area) override {
      EXPECT_EQ(load_le64(area), c.addr);
      EXPECT_EQ(load_le64(area + 8), n.key(0));
      EXPECT_EQ(load_le64(area + kBlockSize - 8), c.range.begin);
      ++prepared;
      return leaf(c, n);
    }
    unsigned prepared = 0;
  };
  auto io = make_memory_engine(256);
  auto leaves = test::two_level_tree(*io, 200, 3);
  test::mutate_block(*io, leaves[7], [](std::uint8_t* b) { b[100] ^= 1; }, false);
  test::mutate_block(*io, leaves[120], [](std::uint8_t* b) { store_le64(b + 32, 1); });
  WalkOptions o = opts();
  o.check_fill = false;
  Prep p;
  Collect plain;
  walk_btree(*io, 1, o, p);
  walk_btree(*io, 1, o, plain);
  EXPECT_EQ(p.prepared, 198u);
  EXPECT_EQ(p.keys, plain.keys);
  ASSERT_EQ(p.damage_seen.size(), 2u);
  ASSERT_EQ(plain.damage_seen.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(p.damage_seen[i].what, plain.damage_seen[i].what);
    EXPECT_EQ(p.damage_seen[i].lost.begin, plain.damage_seen[i].lost.begin);
  }
  Prep root;
  walk_btree(*io, leaves[0], o, root);
  EXPECT_EQ(root.prepared, 0u);
  EXPECT_EQ(root.keys.size(), 3u);
}
