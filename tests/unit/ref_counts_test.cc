// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "persistent-data/ref_counts.h"

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
