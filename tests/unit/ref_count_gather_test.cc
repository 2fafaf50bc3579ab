// SPDX-License-Identifier: GPL-3.0-or-later
// RefCountTreeGather: the image it builds (from leaves handed over and leaves it reads itself)
// gives SpaceMapReader::for_each_bitmap exactly the counts and reports a walk of the tree
// gives, and any damage sends the reader back to its own walk.
#include <gtest/gtest.h>

#include <map>

#include "persistent-data/checksum.h"
#include "persistent-data/space_map/ref_count_gather.h"
#include "persistent-data/space_map/space_map_reader.h"
#include "tests/unit/test_support.h"

namespace thinmeta::pdata {
namespace {

constexpr std::uint64_t kMapBlocks = 1000;
constexpr unsigned kPerLeaf = 120;  // >= max_entries / 3 for 4-byte values
const BlockAddr kLeaves[] = {21, 22, 23};

using Collect = test::SmCollect;

// A metadata-style map of kMapBlocks blocks (index 1, bitmap 2) whose reference-count tree
// is a root at 20 over leaves 21..23: keys l * 200 + k (k < kPerLeaf), count 3 + key % 5.
// Blocks 900..909 have count 1.
SmRoot build(IoEngine& io) {
  AlignedBuffer b(1);
  store_le64(b.data() + 8, 2);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> root;
  for (unsigned l = 0; l < 3; ++l) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
    for (unsigned k = 0; k < kPerLeaf; ++k) {
      std::uint64_t key = l * 200ull + k;
      e.emplace_back(key, 3 + key % 5);
      set_bitmap_entry(b.data(), key, 3);
    }
    test::put_node(io, kLeaves[l], true, e, 4);
    root.emplace_back(e.front().first, kLeaves[l]);
  }
  test::put_node(io, 20, false, root);
  for (unsigned k = 900; k < 910; ++k) set_bitmap_entry(b.data(), k, 1);
  stamp_checksum(b.data(), BlockKind::kBitmap);
  EXPECT_TRUE(io.write(2, b.data()).has_value());
  std::memset(b.data(), 0, kBlockSize);
  store_le64(b.data() + 8, 1);
  encode_index_entry(IndexEntry{2, 0, 0}, b.data() + 16);
  stamp_checksum(b.data(), BlockKind::kIndex);
  EXPECT_TRUE(io.write(1, b.data()).has_value());
  return SmRoot{kMapBlocks, 0, 1, 20};
}

struct Streamed {
  std::map<std::uint64_t, std::uint32_t> counts;
  std::map<BlockAddr, int> used;
  std::vector<std::string> damages;
  bool operator==(const Streamed&) const = default;
};

Streamed stream(IoEngine& io, const SmRoot& root, const RefCountTreeImage* img) {
  Collect c;
  SpaceMapReader r(io, root, SpaceMapKind::kMetadata, io.nr_blocks(), c);
  Streamed s;
  r.for_each_bitmap([&](std::uint64_t first, std::span<const std::uint32_t> counts, bool) {
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (counts[i]) s.counts[first + i] = counts[i];
  }, /*count_ref_count_tree=*/true, img);
  s.used = c.used;
  s.damages = c.damages;
  return s;
}

TEST(RefCountTreeGather, ReadsWhatNobodyHandedOver) {
  auto io = make_memory_engine(32);
  SmRoot root = build(*io);
  RefCountTreeGather g(*io, root, 32);
  ASSERT_TRUE(g.active());
  EXPECT_TRUE(g.wants(22));
  EXPECT_FALSE(g.wants(20));  // internal nodes are read already
  EXPECT_FALSE(g.wants(24));
  RefCountTreeImage img = g.finish();
  ASSERT_TRUE(img.usable);
  EXPECT_EQ(img.counts.get(205), 3u + 205 % 5);
  EXPECT_EQ(img.counts.get(150), 0u);
  Streamed with = stream(*io, root, &img), without = stream(*io, root, nullptr);
  EXPECT_TRUE(without.damages.empty());
  EXPECT_EQ(with, without);
  EXPECT_EQ(with.used, (std::map<BlockAddr, int>{{20, 1}, {21, 1}, {22, 1}, {23, 1}}));
  EXPECT_EQ(with.counts.size(), 3 * kPerLeaf + 10);
}

TEST(RefCountTreeGather, TakesHandedOverLeaves) {
  auto io = make_memory_engine(32);
  SmRoot root = build(*io);
  RefCountTreeGather g(*io, root, 32);
  AlignedBuffer b(1);
  ASSERT_TRUE(io->read(22, b.data()).has_value());
  g.take(22, b.data());
  g.take(22, b.data());  // the same leaf twice: taken once
  g.take(5, b.data());   // not a leaf of the tree: ignored
  EXPECT_EQ(g.nr_taken(), 1u);
  RefCountTreeImage img = g.finish();
  ASSERT_TRUE(img.usable);
  EXPECT_EQ(stream(*io, root, &img), stream(*io, root, nullptr));
}

TEST(RefCountTreeGather, DamageFallsBackToTheWalk) {
  auto io = make_memory_engine(32);
  SmRoot root = build(*io);
  {  // a leaf handed over with another block's bytes (wrong self address)
    RefCountTreeGather g(*io, root, 32);
    AlignedBuffer b(1);
    ASSERT_TRUE(io->read(21, b.data()).has_value());
    g.take(22, b.data());
    EXPECT_FALSE(g.finish().usable);
  }
  // A leaf with a bad checksum, read by finish(): no image, and the reader's own walk reports.
  test::mutate_block(*io, 23, [](std::uint8_t* p) { p[200] ^= 1; }, /*restamp=*/false);
  RefCountTreeGather g(*io, root, 32);
  RefCountTreeImage img = g.finish();
  EXPECT_FALSE(img.usable);
  Streamed with = stream(*io, root, &img), without = stream(*io, root, nullptr);
  EXPECT_FALSE(without.damages.empty());
  EXPECT_EQ(with, without);
  // A count below 3 in a leaf: no image either.
  test::put_node(*io, 23, true, {{400, 2}}, 4);
  RefCountTreeGather g2(*io, root, 32);
  EXPECT_FALSE(g2.finish().usable);
  // A root that is not a node: nothing to gather.
  SmRoot bad = root;
  bad.ref_count_root = 31;
  EXPECT_FALSE(RefCountTreeGather(*io, bad, 32).active());
}

TEST(RefCountTreeGather, BitmapDisagreementsReportedAsByTheWalk) {
  auto io = make_memory_engine(32);
  SmRoot root = build(*io);
  // Block 205 (in the tree) says 1 in the bitmap; block 150 says 3 but has no tree entry.
  test::mutate_block(*io, 2, [](std::uint8_t* p) {
    set_bitmap_entry(p, 205, 1);
    set_bitmap_entry(p, 150, 3);
    stamp_checksum(p, BlockKind::kBitmap);
  }, /*restamp=*/false);
  RefCountTreeGather g(*io, root, 32);
  RefCountTreeImage img = g.finish();
  ASSERT_TRUE(img.usable);
  Streamed with = stream(*io, root, &img), without = stream(*io, root, nullptr);
  ASSERT_EQ(without.damages.size(), 2u);
  EXPECT_EQ(with, without);
}

}  // namespace
}  // namespace thinmeta::pdata
