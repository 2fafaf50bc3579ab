// SPDX-License-Identifier: GPL-3.0-or-later
// RefCountTreeGather: the image it builds (from leaves handed over and leaves it reads itself)
// gives SpaceMapReader::for_each_bitmap exactly the counts and reports a walk of the tree
// gives, and any damage sends the reader back to its own walk.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
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

namespace thinmeta::pdata {
namespace {

// A map of three whole bitmaps and a partial one (blocks 2..5, index at 1), whose tree (root
// 40, leaves 41..43) holds counts 3..7 for blocks in bitmaps 0 and 1; bitmap 2 has counts 1
// and 2, bitmap 3 (partial) a few 1s. `truth` gets every block's count.
constexpr std::uint64_t kQuickBlocks = 3 * kEntriesPerBitmap + 100;
SmRoot build_quick(IoEngine& io, RefCounts& truth) {
  std::vector<AlignedBuffer> bm;
  for (int i = 0; i < 4; ++i) {
    bm.emplace_back(1);
    std::memset(bm.back().data(), 0, kBlockSize);
    store_le64(bm.back().data() + 8, 2 + static_cast<std::uint64_t>(i));
  }
  auto put = [&](std::uint64_t b, std::uint32_t c) {
    set_bitmap_entry(bm[b / kEntriesPerBitmap].data(), b % kEntriesPerBitmap, std::min(c, 3u));
    truth.set(b, c);
  };
  const std::uint64_t starts[] = {0, kEntriesPerBitmap + 500, kEntriesPerBitmap + 9000};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> root;
  for (unsigned l = 0; l < 3; ++l) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
    for (std::uint64_t k = 0; k < 300; ++k) {
      std::uint64_t key = starts[l] + k + k / 7;  // runs of 7 with gaps
      e.emplace_back(key, 3 + key % 5);
      put(key, static_cast<std::uint32_t>(3 + key % 5));
    }
    test::put_node(io, 41 + l, true, e, 4);
    root.emplace_back(e.front().first, 41 + l);
  }
  test::put_node(io, 40, false, root);
  for (std::uint64_t k = 0; k < 4000; ++k) put(kEntriesPerBitmap + 2000 + k, 1);
  for (std::uint64_t k = 0; k < 9000; ++k) put(2 * kEntriesPerBitmap + 17 + k, 1 + k % 2);
  for (std::uint64_t k = 0; k < 50; ++k) put(3 * kEntriesPerBitmap + 2 * k, 1);
  for (int i = 0; i < 4; ++i) {
    stamp_checksum(bm[i].data(), BlockKind::kBitmap);
    EXPECT_TRUE(io.write(2 + static_cast<BlockAddr>(i), bm[i].data()).has_value());
  }
  AlignedBuffer ix(1);
  std::memset(ix.data(), 0, kBlockSize);
  store_le64(ix.data() + 8, 1);
  for (int i = 0; i < 4; ++i)
    encode_index_entry(IndexEntry{2 + static_cast<BlockAddr>(i), 0, 0},
                       ix.data() + 16 + kIndexEntrySize * static_cast<std::size_t>(i));
  stamp_checksum(ix.data(), BlockKind::kIndex);
  EXPECT_TRUE(io.write(1, ix.data()).has_value());
  return SmRoot{kQuickBlocks, 0, 1, 40};
}

struct QuickRun {
  std::vector<std::uint64_t> given;  // first block of each bitmap given to fn
  std::map<std::uint64_t, std::uint32_t> counts;
  std::vector<std::string> damages;
  std::uint64_t quick_nonzero = 0;
};

QuickRun stream_quick(IoEngine& io, const SmRoot& root, const RefCountTreeImage& img,
                      const RefCounts* expected) {
  test::SmCollect c;
  SpaceMapReader r(io, root, SpaceMapKind::kMetadata, io.nr_blocks(), c);
  QuickRun q;
  std::atomic<std::uint64_t> nz{0};
  SpaceMapReader::QuickFn quick = [&](std::uint64_t first, const std::uint8_t* e, std::size_t len) {
    auto n = expected->matches_bitmap(first, e, len, &img.counts);
    if (n) nz += *n;
    return n.has_value();
  };
  r.for_each_bitmap([&](std::uint64_t first, std::span<const std::uint32_t> counts, bool) {
    q.given.push_back(first);
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (counts[i]) q.counts[first + i] = counts[i];
  }, /*count_ref_count_tree=*/false, &img, expected ? &quick : nullptr);
  q.damages = c.damages;
  q.quick_nonzero = nz;
  return q;
}

// Bitmaps that agree with the expected counts are taken by quick; the others reach fn with
// the same counts and the same damage reports, in the same order, as without quick.
TEST(SpaceMapReader, QuickBitmapsSkipOnlyWhatAgrees) {
  for (int scenario = 0; scenario < 4; ++scenario) {
    auto io = make_memory_engine(64);
    RefCounts truth(kQuickBlocks);
    SmRoot root = build_quick(*io, truth);
    RefCounts expected(kQuickBlocks);
    truth.for_each_nonzero([&](std::uint64_t b, std::uint32_t c) { expected.set(b, c); });
    std::vector<std::uint64_t> declined;  // bitmaps quick must leave to fn
    if (scenario == 1) {  // a computed count differs in bitmap 1
      expected.set(kEntriesPerBitmap + 2100, 2);
      declined = {1};
    } else if (scenario == 2) {  // bitmap 0: a tree block says 1; bitmap 2: a 3 without entry
      test::mutate_block(*io, 2, [](std::uint8_t* p) {
        set_bitmap_entry(p, 20, 1);
        stamp_checksum(p, BlockKind::kBitmap);
      }, false);
      test::mutate_block(*io, 4, [](std::uint8_t* p) {
        set_bitmap_entry(p, 16000, 3);
        stamp_checksum(p, BlockKind::kBitmap);
      }, false);
      declined = {0, 2};
    } else if (scenario == 3) {  // a count beyond the tree's: 300 (a far count) in bitmap 1
      expected.set(kEntriesPerBitmap + 600, 300);
      declined = {1};
    }
    RefCountTreeGather g(*io, root, 64);
    RefCountTreeImage img = g.finish();
    ASSERT_TRUE(img.usable);
    QuickRun with = stream_quick(*io, root, img, &expected);
    QuickRun without = stream_quick(*io, root, img, nullptr);
    EXPECT_EQ(with.damages, without.damages) << scenario;
    EXPECT_EQ(without.damages.empty(), scenario < 2 || scenario == 3) << scenario;
    // fn saw the declined bitmaps and the partial last one, with the counts it sees without.
    std::vector<std::uint64_t> want_given;
    for (std::uint64_t i : declined) want_given.push_back(i * kEntriesPerBitmap);
    want_given.push_back(3 * kEntriesPerBitmap);
    EXPECT_EQ(with.given, want_given) << scenario;
    std::uint64_t skipped_nonzero = 0;
    for (const auto& [b, c] : without.counts) {
      bool given = std::find(with.given.begin(), with.given.end(),
                             b / kEntriesPerBitmap * kEntriesPerBitmap) != with.given.end();
      if (given) {
        EXPECT_EQ(with.counts.at(b), c);
      } else {
        EXPECT_EQ(expected.get(b), c) << b;
        ++skipped_nonzero;
      }
    }
    EXPECT_EQ(with.quick_nonzero, skipped_nonzero) << scenario;
  }
}

}  // namespace
}  // namespace thinmeta::pdata
