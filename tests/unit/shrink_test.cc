// SPDX-License-Identifier: GPL-3.0-or-later
// thin_shrink's plan and remapping (thin/shrink.h): used blocks >= N go to the free blocks < N
// in ascending order, as runs; shared blocks move once; runs split where the plan splits them.
#include <gtest/gtest.h>

#include <vector>

#include "thin/shrink.h"

namespace thinmeta::thin {
namespace {

struct Dev {
  std::uint64_t id;
  std::vector<MappingRun> runs;
};

struct Collect final : MetadataSink {
  Result<> begin_superblock(const SuperblockInfo& s) override {
    sb = s;
    return {};
  }
  Result<> end_superblock() override { return {}; }
  Result<> begin_device(const DeviceInfo& d) override {
    devs.push_back({d.dev_id, {}});
    return {};
  }
  Result<> end_device() override { return {}; }
  Result<> map(const MappingRun& r) override {
    devs.back().runs.push_back(r);
    return {};
  }
  SuperblockInfo sb;
  std::vector<Dev> devs;
};

MetadataSource source(std::uint64_t nr_data, const std::vector<Dev>& devs) {
  return [=](MetadataSink& s) -> Result<> {
    SuperblockInfo sb;
    sb.data_block_size = 128;
    sb.nr_data_blocks = nr_data;
    THINMETA_CHECK(s.begin_superblock(sb));
    for (const auto& d : devs) {
      DeviceInfo di;
      di.dev_id = d.id;
      THINMETA_CHECK(s.begin_device(di));
      for (const auto& r : d.runs) THINMETA_CHECK(s.map(r));
      THINMETA_CHECK(s.end_device());
    }
    return s.end_superblock();
  };
}

// Each virtual block's data block, per device.
std::vector<std::vector<std::uint64_t>> flatten(const std::vector<Dev>& devs) {
  std::vector<std::vector<std::uint64_t>> out;
  for (const auto& d : devs) {
    out.emplace_back();
    for (const auto& r : d.runs)
      for (std::uint64_t i = 0; i < r.len; ++i) out.back().push_back(r.data_begin + i);
  }
  return out;
}

TEST(Shrink, MovesHighBlocksIntoLowHolesAndKeepsSharing) {
  // 100 blocks; used: 0-9, 20-24, 90-99 (dev 1), 95-99 again (dev 2, shared), 60.
  std::vector<Dev> devs = {{1, {{0, 0, 10, 0}, {10, 20, 5, 1}, {15, 90, 10, 2}}},
                           {2, {{0, 95, 5, 0}, {7, 60, 1, 3}}}};
  auto plan = plan_shrink(source(100, devs), 50);
  ASSERT_TRUE(plan) << plan.error().what;
  EXPECT_EQ(plan->moved_blocks, 11u);  // 60 and 90-99
  // Free below 50: 10-19, 25-49. 60 -> 10, 90-98 -> 11-19, 99 -> 25.
  ASSERT_EQ(plan->moves.size(), 3u);
  EXPECT_EQ(plan->moves[0].src, 60u);
  EXPECT_EQ(plan->moves[0].dst, 10u);
  EXPECT_EQ(plan->moves[1].src, 90u);
  EXPECT_EQ(plan->moves[1].dst, 11u);
  EXPECT_EQ(plan->moves[1].len, 9u);
  EXPECT_EQ(plan->moves[2].src, 99u);
  EXPECT_EQ(plan->moves[2].dst, 25u);

  Collect out;
  ShrinkRemapper remap(*plan, out);
  ASSERT_TRUE(source(100, devs)(remap));
  EXPECT_EQ(out.sb.nr_data_blocks, 50u);
  auto before = flatten(devs), after = flatten(out.devs);
  ASSERT_EQ(before.size(), after.size());
  for (std::size_t d = 0; d < before.size(); ++d) {
    ASSERT_EQ(before[d].size(), after[d].size());
    for (std::size_t i = 0; i < before[d].size(); ++i) {
      std::uint64_t b = before[d][i], a = after[d][i];
      EXPECT_LT(a, 50u);
      if (b < 50) {
        EXPECT_EQ(a, b);
      }
    }
  }
  // Shared: device 2's 95-99 follow device 1's 95-99.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(after[1][static_cast<std::size_t>(i)], after[0][20 + static_cast<std::size_t>(i)]);
  // Times and virtual blocks kept.
  EXPECT_EQ(out.devs[0].runs.back().time, 2u);
  EXPECT_EQ(out.devs[0].runs.back().thin_begin + out.devs[0].runs.back().len, 25u);
}

TEST(Shrink, RefusesWhenTheMappedBlocksDoNotFit) {
  std::vector<Dev> devs = {{1, {{0, 0, 8, 0}, {8, 12, 4, 0}}}};
  auto plan = plan_shrink(source(16, devs), 10);  // 12 used, 10 blocks
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Errc::kNoSpace);
  EXPECT_TRUE(plan_shrink(source(16, devs), 12));  // exactly fits
  EXPECT_FALSE(plan_shrink(source(16, devs), 0));
  EXPECT_FALSE(plan_shrink(source(16, devs), 17));
  EXPECT_FALSE(plan_shrink(source(10, devs), 10));  // a mapping beyond the device
}

TEST(Shrink, NothingToMove) {
  std::vector<Dev> devs = {{1, {{0, 3, 4, 0}}}};
  auto plan = plan_shrink(source(1000, devs), 7);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->moves.empty());
}

TEST(Shrink, LargeSparseDevice) {  // one bit per block; runs of moves
  const std::uint64_t n = 1ull << 24;
  std::vector<Dev> devs = {{1, {{0, n - 1000, 1000, 0}, {5000, 0, 100, 0}}}};
  auto plan = plan_shrink(source(n, devs), n / 2);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->moves.size(), 1u);
  EXPECT_EQ(plan->moves[0].dst, 100u);
  EXPECT_EQ(plan->moves[0].len, 1000u);
}

}  // namespace
}  // namespace thinmeta::thin
