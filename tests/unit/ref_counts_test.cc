// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "persistent-data/space_map/ref_counts.h"

using thinmeta::pdata::RefCounts;

TEST(RefCounts, MatchesAMapUnderRandomOperations) {
  RefCounts rc(1ull << 40);
  std::map<std::uint64_t, std::uint32_t> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Mix dense regions (to force densify) and far-flung blocks.
    std::uint64_t b = (i % 3 == 0) ? rng() % (1ull << 40) : rng() % 40000;
    switch (rng() % 4) {
      case 0:
      case 1: rc.inc(b); ++model[b]; break;
      case 2: {
        std::uint32_t by = static_cast<std::uint32_t>(rng() % 5);
        rc.inc(b, by);
        model[b] += by;
        break;
      }
      case 3:
        if (model[b]) --model[b];
        rc.dec(b);
        break;
    }
  }
  std::uint64_t nz = 0;
  for (auto& [b, c] : model) {
    ASSERT_EQ(rc.get(b), c) << b;
    nz += c != 0;
  }
  EXPECT_EQ(rc.nr_nonzero(), nz);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> seen;
  rc.for_each_nonzero([&](std::uint64_t b, std::uint32_t c) { seen.emplace_back(b, c); });
  ASSERT_EQ(seen.size(), nz);
  auto it = seen.begin();
  for (auto& [b, c] : model)
    if (c) {
      EXPECT_EQ(*it, std::make_pair(b, c));
      ++it;
    }
}

TEST(RefCounts, MemoryFollowsUseNotSize) {
  RefCounts rc(1ull << 36);  // 64 Gi blocks
  for (std::uint64_t i = 0; i < 100000; ++i) rc.inc((i * 7919) << 12);
  EXPECT_LT(rc.memory_bytes(), 64u << 20);  // far below 2 bits x 2^36 = 16 GiB
  for (std::uint64_t i = 0; i < 100000; ++i) EXPECT_EQ(rc.get((i * 7919) << 12), 1u);
}

TEST(RefCounts, DenseRegionUsesTwoBitsABlock) {
  RefCounts rc(1 << 20);
  for (std::uint64_t b = 0; b < (1 << 20); ++b) rc.inc(b);
  EXPECT_LT(rc.memory_bytes(), (1u << 20) / 4 + 64 * 1024);
  EXPECT_EQ(rc.nr_nonzero(), 1u << 20);
}

TEST(RefCounts, RangesAndLargeCountsMatchAMap) {
  // Runs over a few pages, with counts crossing every representation: sparse, 2 bits, the
  // overflow list, a byte a block and the global map (>= 255).
  RefCounts rc(1ull << 20);
  std::map<std::uint64_t, std::uint32_t> model;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t b = rng() % (3 * RefCounts::kPageBlocks);
    std::uint64_t len = 1 + rng() % 40;
    std::uint32_t by = (rng() % 50 == 0) ? static_cast<std::uint32_t>(rng() % 400) : 1;
    switch (rng() % 8) {
      case 0:
        rc.set(b, by);
        model[b] = by;
        break;
      case 1:
        rc.dec(b);
        if (model[b]) --model[b];
        break;
      default:
        rc.inc_range(b, len, by);
        for (std::uint64_t k = 0; k < len; ++k) model[b + k] += by;
    }
  }
  std::uint64_t nz = 0, ovf = 0;
  for (auto& [b, c] : model) {
    ASSERT_EQ(rc.get(b), c) << b;
    nz += c != 0;
    ovf += c >= 3;
  }
  EXPECT_EQ(rc.nr_nonzero(), nz);
  EXPECT_EQ(rc.nr_overflow(), ovf);
  std::vector<std::uint32_t> got(3 * RefCounts::kPageBlocks + 100);
  rc.get_range(0, got);
  for (std::uint64_t b = 0; b < got.size(); ++b) {
    auto it = model.find(b);
    ASSERT_EQ(got[b], it == model.end() ? 0u : it->second) << b;
  }
  std::uint64_t seen = 0;
  rc.for_each_nonzero([&](std::uint64_t b, std::uint32_t c) {
    ++seen;
    EXPECT_EQ(c, model[b]);
  });
  EXPECT_EQ(seen, nz);
}

TEST(RefCounts, SnapshotSharedRegionUsesAByteABlock) {
  // An origin and three snapshots: every count is 4.
  RefCounts rc(1 << 20);
  for (int dev = 0; dev < 4; ++dev) rc.inc_range(0, 1 << 20);
  EXPECT_LT(rc.memory_bytes(), (1u << 20) + 64 * 1024);
  EXPECT_EQ(rc.nr_overflow(), 1u << 20);
  EXPECT_EQ(rc.get(12345), 4u);
  RefCounts moved(std::move(rc));
  EXPECT_EQ(moved.get(12345), 4u);
  EXPECT_EQ(rc.get(12345), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
}

TEST(RefCounts, UpdateRangeAppliesAStateMachineOncePerBlock) {
  RefCounts rc(1ull << 32);
  std::map<std::uint64_t, std::uint32_t> model;
  std::mt19937_64 rng(5);
  auto step = [](std::uint32_t c, std::uint32_t tag) { return c == 0 ? tag : 1; };
  for (int i = 0; i < 30000; ++i) {
    // Dense near 0 (byte pages), sparse far away; tags up to 600 reach the global map.
    std::uint64_t b = (i % 4 == 0) ? rng() % (1ull << 32) : rng() % (2 * RefCounts::kPageBlocks);
    std::uint64_t len = 1 + rng() % 30;
    auto tag = static_cast<std::uint32_t>(2 + rng() % (i % 7 == 0 ? 600 : 5));
    std::uint64_t calls = 0;
    rc.update_range(b, len, [&](std::uint32_t c) {
      ++calls;
      return step(c, tag);
    });
    ASSERT_EQ(calls, len);
    for (std::uint64_t k = 0; k < len; ++k) model[b + k] = step(model[b + k], tag);
  }
  for (auto& [b, c] : model) ASSERT_EQ(rc.get(b), c) << b;
  EXPECT_EQ(rc.nr_nonzero(), model.size());
}

TEST(RefCounts, IncRangeOnTwoBitPagesStopsAtEachOverflow) {
  // Dense pages of counts 0-2 (a word at a time in inc_range) with adds of 1 and 2 that push
  // some entries to >= 3 mid-word.
  RefCounts rc(1 << 16);
  std::vector<std::uint32_t> model(1 << 16);
  std::mt19937_64 rng(3);
  for (std::uint64_t b = 0; b < model.size(); ++b) {
    model[b] = static_cast<std::uint32_t>(rng() % 3);
    rc.set(b, model[b]);
  }
  for (int i = 0; i < 3000; ++i) {
    std::uint64_t b = rng() % (model.size() - 100);
    std::uint64_t len = 1 + rng() % 90;
    auto by = static_cast<std::uint32_t>(1 + rng() % 2);
    rc.inc_range(b, len, by);
    for (std::uint64_t k = 0; k < len; ++k) model[b + k] += by;
    if (i % 500 == 0)  // bring some back below 3
      for (std::uint64_t k = 0; k < 2000; ++k) {
        std::uint64_t x = rng() % model.size();
        model[x] = static_cast<std::uint32_t>(rng() % 3);
        rc.set(x, model[x]);
      }
  }
  for (std::uint64_t b = 0; b < model.size(); ++b) ASSERT_EQ(rc.get(b), model[b]) << b;
}

TEST(RefCounts, SetSortedMatchesSetOneByOne) {
  // Leaves of sorted (block, count) pairs, as a reference-count tree gives them, over pages in
  // every form (appended sparse, densified to 2 bits or bytes, far counts >= 255), and pages
  // written out of order (the general path).
  std::mt19937_64 rng(19);
  RefCounts bulk(1ull << 24), one(1ull << 24);
  for (int leaf = 0; leaf < 400; ++leaf) {
    std::uint64_t b = rng() % (6 * RefCounts::kPageBlocks);
    std::vector<std::uint64_t> blocks;
    std::vector<std::uint32_t> counts;
    auto n = static_cast<std::size_t>(1 + rng() % 336);
    for (std::size_t i = 0; i < n; ++i) {
      b += 1 + (leaf % 3 == 0 ? rng() % 200 : rng() % 3);
      blocks.push_back(b);
      std::uint32_t c = rng() % 40 == 0 ? static_cast<std::uint32_t>(rng() % 300000)
                                        : static_cast<std::uint32_t>(rng() % 6);
      counts.push_back(c);
      one.set(b, c);
    }
    bulk.set_sorted(blocks, counts);
  }
  std::vector<std::uint32_t> want(8 * RefCounts::kPageBlocks), got(want.size());
  one.get_range(0, want);
  bulk.get_range(0, got);
  ASSERT_EQ(got, want);
  EXPECT_EQ(bulk.nr_nonzero(), one.nr_nonzero());
  EXPECT_EQ(bulk.nr_overflow(), one.nr_overflow());
}

TEST(RefCounts, FirstMismatchFindsTheFirstDifferingBlock) {
  // Pages sparse, 2 bits, bytes with far counts, and absent; each compared whole, then with
  // one count changed at random places (chunk edges included).
  RefCounts rc(1ull << 24);
  std::mt19937_64 rng(23);
  for (int i = 0; i < 3000; ++i) rc.inc(rng() % RefCounts::kPageBlocks);  // sparse or 2 bits
  rc.inc_range(RefCounts::kPageBlocks, RefCounts::kPageBlocks);           // 2 bits, all 1
  for (int d = 0; d < 4; ++d) rc.inc_range(2 * RefCounts::kPageBlocks, RefCounts::kPageBlocks);
  for (int i = 0; i < 50; ++i) rc.set(2 * RefCounts::kPageBlocks + rng() % 1000, 255 + i);
  // page 3 absent; page 4: a few counts
  for (int i = 0; i < 5; ++i) rc.set(4 * RefCounts::kPageBlocks + 7 * i, 3 + i);
  const std::uint64_t first = 100, len = 5 * RefCounts::kPageBlocks - 300;
  std::vector<std::uint32_t> got(len);
  rc.get_range(first, got);
  EXPECT_EQ(rc.first_mismatch(first, got), len);
  for (int t = 0; t < 400; ++t) {
    std::uint64_t at = t < 8 ? (t * 64 + (t % 2 ? 63 : 0)) % len : rng() % len;
    std::vector<std::uint32_t> g = got;
    g[at] = g[at] == 0 ? 1 : (t % 3 == 0 ? g[at] + 300 : g[at] - 1);
    ASSERT_EQ(rc.first_mismatch(first, g), at) << at;
  }
}
