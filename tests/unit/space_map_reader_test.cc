// SPDX-License-Identifier: GPL-3.0-or-later
// SpaceMapReader and fix_counts on hand-built space maps in a memory engine.
#include <gtest/gtest.h>

#include <map>

#include "persistent-data/checksum.h"
#include "persistent-data/space_map/ref_counts.h"
#include "persistent-data/space_map/space_map_fixer.h"
#include "persistent-data/space_map/space_map_reader.h"
#include "tests/unit/test_support.h"

namespace thinmeta::pdata {
namespace {

using Collect = test::SmCollect;

// A metadata-style map of 100 blocks: index block 1, bitmap 2, reference-count leaf 3.
// Counts: block 0 -> 1, 5 -> 7 (overflow), 6 -> 2, 99 -> 1.
SmRoot build_metadata_map(IoEngine& io) {
  AlignedBuffer b(1);
  std::memset(b.data(), 0, kBlockSize);
  store_le64(b.data() + 8, 2);
  set_bitmap_entry(b.data(), 0, 1);
  set_bitmap_entry(b.data(), 5, 3);
  set_bitmap_entry(b.data(), 6, 2);
  set_bitmap_entry(b.data(), 99, 1);
  stamp_checksum(b.data(), BlockKind::kBitmap);
  EXPECT_TRUE(io.write(2, b.data()).has_value());
  std::memset(b.data(), 0, kBlockSize);
  store_le64(b.data() + 8, 1);
  encode_index_entry(IndexEntry{2, 16316, 1}, b.data() + 16);
  stamp_checksum(b.data(), BlockKind::kIndex);
  EXPECT_TRUE(io.write(1, b.data()).has_value());
  test::put_node(io, 3, true, {{5, 7}}, 4);
  return SmRoot{100, 4, 1, 3};
}

std::map<std::uint64_t, std::uint32_t> read_counts(IoEngine& io, const SmRoot& root, SpaceMapKind k,
                                                   Collect& c) {
  SpaceMapReader r(io, root, k, io.nr_blocks(), c);
  std::map<std::uint64_t, std::uint32_t> out;
  r.for_each_bitmap([&](std::uint64_t first, std::span<const std::uint32_t> counts, bool valid) {
    EXPECT_TRUE(valid);
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (counts[i]) out[first + i] = counts[i];
  });
  return out;
}

TEST(SpaceMapReader, StreamsCountsWithOverflow) {
  auto io = make_memory_engine(16);
  SmRoot root = build_metadata_map(*io);
  Collect c;
  auto counts = read_counts(*io, root, SpaceMapKind::kMetadata, c);
  EXPECT_TRUE(c.damages.empty());
  EXPECT_EQ(counts, (std::map<std::uint64_t, std::uint32_t>{{0, 1}, {5, 7}, {6, 2}, {99, 1}}));
  SpaceMapReader r(*io, root, SpaceMapKind::kMetadata, 16, c);
  r.count_structure();
  EXPECT_EQ(c.used, (std::map<BlockAddr, int>{{1, 1}, {2, 1}, {3, 1}}));
}

TEST(SpaceMapReader, ReportsMissingOverflowEntryAndBadBitmap) {
  auto io = make_memory_engine(16);
  SmRoot root = build_metadata_map(*io);
  test::put_node(*io, 3, true, {}, 4);  // block 5 says 3 in the bitmap, no tree entry
  Collect c;
  read_counts(*io, root, SpaceMapKind::kMetadata, c);
  ASSERT_EQ(c.damages.size(), 1u);
  EXPECT_NE(c.damages[0].find("first: block 5"), std::string::npos);

  test::mutate_block(*io, 2, [](std::uint8_t* p) { p[100] ^= 1; }, /*restamp=*/false);
  Collect c2;
  SpaceMapReader r(*io, root, SpaceMapKind::kMetadata, 16, c2);
  bool valid = true;
  r.for_each_bitmap([&](std::uint64_t, std::span<const std::uint32_t>, bool v) { valid = v; });
  EXPECT_FALSE(valid);
  ASSERT_FALSE(c2.damages.empty());
  EXPECT_NE(c2.damages[0].find("bad checksum in space map bitmap (block 2)"), std::string::npos);
}

TEST(SpaceMapReader, DataIndexBtree) {
  auto io = make_memory_engine(16);
  build_metadata_map(*io);  // reuse bitmap 2 and overflow leaf 3
  AlignedBuffer b(1);
  // Index btree leaf at 4: key 0 -> {bitmap 2}.
  test::put_node(*io, 4, true, {}, 16);
  test::mutate_block(*io, 4, [](std::uint8_t* p) {
    store_le32(p + 16, 1);
    store_le64(p + 32, 0);
    encode_index_entry(IndexEntry{2, 16316, 1}, p + 32 + 8 * max_entries_for(16));
  });
  SmRoot root{100, 4, 4, 3};
  Collect c;
  auto counts = read_counts(*io, root, SpaceMapKind::kData, c);
  EXPECT_TRUE(c.damages.empty());
  EXPECT_EQ(counts.at(5), 7u);
  SpaceMapReader r(*io, root, SpaceMapKind::kData, 16, c);
  r.count_structure();
  EXPECT_EQ(c.used, (std::map<BlockAddr, int>{{2, 1}, {3, 1}, {4, 1}}));
}

TEST(SpaceMapFixer, LowersCountsInPlace) {
  auto io = make_memory_engine(16);
  SmRoot root = build_metadata_map(*io);
  Collect c;
  SpaceMapReader r(*io, root, SpaceMapKind::kMetadata, 16, c);
  std::vector<CountFix> fixes{{5, 4}, {6, 0}, {99, 0}};
  auto freed = fix_counts(*io, r, root, fixes);
  ASSERT_TRUE(freed.has_value()) << freed.error().what;
  EXPECT_EQ(*freed, 2u);
  Collect c2;
  auto counts = read_counts(*io, root, SpaceMapKind::kMetadata, c2);
  EXPECT_TRUE(c2.damages.empty());
  EXPECT_EQ(counts, (std::map<std::uint64_t, std::uint32_t>{{0, 1}, {5, 4}}));
  AlignedBuffer b(1);
  ASSERT_TRUE(io->read(1, b.data()).has_value());
  EXPECT_EQ(decode_index_entry(b.data() + 16).nr_free, 16318u);

  // Leaving the reference-count tree: the (root) leaf loses the entry.
  SpaceMapReader r2(*io, root, SpaceMapKind::kMetadata, 16, c2);
  std::vector<CountFix> fix2{{5, 2}};
  ASSERT_TRUE(fix_counts(*io, r2, root, fix2).has_value());
  Collect c3;
  counts = read_counts(*io, root, SpaceMapKind::kMetadata, c3);
  EXPECT_TRUE(c3.damages.empty());
  EXPECT_EQ(counts.at(5), 2u);
}

TEST(RefCounts, GetRangeMatchesGet) {
  RefCounts rc(100000);
  for (std::uint64_t b : {0ull, 1ull, 16383ull, 16384ull, 50000ull, 99999ull}) rc.inc(b, 1 + b % 5);
  std::vector<std::uint32_t> out(40000);
  rc.get_range(10000, out);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], rc.get(10000 + i)) << i;
}

}  // namespace
}  // namespace thinmeta::pdata

namespace thinmeta::pdata {
namespace {

// Many counts >= 3 in one page (the small list turns into a byte a block), counts >= 258,
// and decrements back below 3, against a plain map.
TEST(RefCounts, WideOverflowMatchesModel) {
  RefCounts rc(1 << 20);
  std::map<std::uint64_t, std::uint32_t> model;
  for (std::uint64_t b = 0; b < 5000; ++b) {
    std::uint32_t by = 1 + static_cast<std::uint32_t>(b % 7);
    rc.inc(b * 3, by);
    model[b * 3] += by;
  }
  rc.inc(30, 300);
  model[30] += 300;
  rc.set(33, 70000);
  model[33] = 70000;
  for (std::uint64_t b = 0; b < 15000; b += 9) {
    rc.dec(b);
    if (model.count(b) && model[b]) --model[b];
  }
  rc.set(30, 1);
  model[30] = 1;
  for (const auto& [b, c] : model) ASSERT_EQ(rc.get(b), c) << b;
  std::uint64_t nz = 0;
  for (const auto& [b, c] : model) nz += c != 0;
  EXPECT_EQ(rc.nr_nonzero(), nz);
  std::vector<std::uint32_t> out(15000);
  rc.get_range(0, out);
  for (std::uint64_t b = 0; b < out.size(); ++b)
    ASSERT_EQ(out[b], model.count(b) ? model[b] : 0u) << b;
}

}  // namespace
}  // namespace thinmeta::pdata

namespace thinmeta::pdata {
namespace {

TEST(RefCounts, NrOverflowAndIncRange) {
  RefCounts rc(1 << 16);
  rc.inc_range(10, 5000, 3);  // 5000 blocks at 3: past the small list, into `wide`
  rc.inc(10, 400);
  rc.inc(20000, 2);
  EXPECT_EQ(rc.nr_overflow(), 5000u);
  EXPECT_EQ(rc.get(10), 403u);
  EXPECT_EQ(rc.get(5009), 3u);
  EXPECT_EQ(rc.get(5010), 0u);
  rc.set(11, 1);
  EXPECT_EQ(rc.nr_overflow(), 4999u);
}

}  // namespace
}  // namespace thinmeta::pdata
