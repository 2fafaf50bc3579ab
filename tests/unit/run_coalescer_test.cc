// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump's run joining: RunCoalescer::add_leaf (runs extended four mappings a step) gives
// the runs add() gives one mapping at a time, for runs of every length broken at every
// position of the four-mapping step (key gap, data gap, data going back, time change) and
// across leaves, and near the largest data block a packed value holds (2^40 - 1, after which
// data block 0 does not continue a run).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "persistent-data/endian.h"
#include "thin/sink.h"

namespace {

using namespace thinmeta;

struct Runs final : thin::MetadataSink {
  std::vector<thin::MappingRun> runs;
  Result<> begin_superblock(const thin::SuperblockInfo&) override { return {}; }
  Result<> end_superblock() override { return {}; }
  Result<> begin_device(const thin::DeviceInfo&) override { return {}; }
  Result<> end_device() override { return {}; }
  Result<> map(const thin::MappingRun& r) override {
    runs.push_back(r);
    return {};
  }
};

bool operator==(const thin::MappingRun& a, const thin::MappingRun& b) {
  return a.thin_begin == b.thin_begin && a.data_begin == b.data_begin && a.len == b.len &&
         a.time == b.time;
}

struct Mapping {
  std::uint64_t key, data;
  std::uint32_t time;
};

// The runs of `ms` through add_leaf, in leaves of the given sizes (cycled), and through add().
void expect_same_runs(const std::vector<Mapping>& ms, const std::vector<std::uint32_t>& leaves) {
  Runs a, b;
  thin::RunCoalescer ca(a), cb(b);
  std::size_t at = 0;
  for (std::size_t l = 0; at < ms.size(); ++l) {
    std::uint32_t n = std::min<std::size_t>(leaves[l % leaves.size()], ms.size() - at);
    std::vector<std::uint8_t> keys(8 * n), vals(8 * n);
    for (std::uint32_t i = 0; i < n; ++i) {
      pdata::store_le64(keys.data() + 8 * i, ms[at + i].key);
      pdata::store_le64(vals.data() + 8 * i, thin::pack_block_time(ms[at + i].data, ms[at + i].time));
    }
    ASSERT_TRUE(ca.add_leaf(keys.data(), vals.data(), n).has_value());
    at += n;
  }
  for (const Mapping& m : ms) ASSERT_TRUE(cb.add(m.key, m.data, m.time).has_value());
  ASSERT_TRUE(ca.flush().has_value());
  ASSERT_TRUE(cb.flush().has_value());
  ASSERT_EQ(a.runs.size(), b.runs.size());
  for (std::size_t i = 0; i < a.runs.size(); ++i) EXPECT_TRUE(a.runs[i] == b.runs[i]) << i;
}

TEST(RunCoalescer, LeavesGiveTheRunsOfSingleAdds) {
  // A run of `len` mappings then a break of each kind, for len 1..13 and a leaf start at each
  // offset.
  for (int kind = 0; kind < 4; ++kind)
    for (std::uint64_t len = 1; len <= 13; ++len)
      for (std::uint32_t skew = 0; skew < 5; ++skew) {
        std::vector<Mapping> ms;
        std::uint64_t k = 100, d = 5000;
        std::uint32_t t = 1;
        for (int rep = 0; rep < 6; ++rep) {
          for (std::uint64_t i = 0; i < len; ++i) ms.push_back({k++, d++, t});
          switch (kind) {
            case 0: k += 3; break;   // key gap
            case 1: d += 7; break;   // data gap
            case 2: d -= 2; break;   // data going back
            default: t ^= 1; break;  // time change
          }
        }
        expect_same_runs(ms, {skew + 1, 9, 252, 4});
        expect_same_runs(ms, {1000});
      }
  // Random leaves: runs of random lengths and breaks.
  std::mt19937_64 rng(19);
  for (int round = 0; round < 200; ++round) {
    std::vector<Mapping> ms;
    std::uint64_t k = rng() % 1000, d = rng() % (1ull << 39);
    std::uint32_t t = static_cast<std::uint32_t>(rng() % 3);
    for (int r = 0; r < 50; ++r) {
      std::uint64_t len = 1 + rng() % (r % 2 ? 40 : 6);
      for (std::uint64_t i = 0; i < len; ++i) ms.push_back({k++, d++, t});
      switch (rng() % 4) {
        case 0: k += 1 + rng() % 3; break;
        case 1: d += 1 + rng() % 3; break;
        case 2: d -= 1 + rng() % 3; break;
        default: t = static_cast<std::uint32_t>((t + 1) % 3); break;
      }
    }
    expect_same_runs(ms, {static_cast<std::uint32_t>(1 + rng() % 300), 252, 126});
  }
}

TEST(RunCoalescer, DataBlockZeroAfterTheLargestDoesNotContinueARun) {
  const std::uint64_t top = (1ull << 40) - 1;
  for (std::uint64_t before = 1; before <= 9; ++before) {
    std::vector<Mapping> ms;
    std::uint64_t k = 10, d = top + 1 - before;
    for (std::uint64_t i = 0; i < before; ++i) ms.push_back({k++, d++, 2});
    for (std::uint64_t i = 0; i < 9; ++i) ms.push_back({k++, i, 2});  // d wrapped to 0
    expect_same_runs(ms, {252});
    Runs r;
    thin::RunCoalescer c(r);
    for (const Mapping& m : ms) ASSERT_TRUE(c.add(m.key, m.data, m.time).has_value());
    ASSERT_TRUE(c.flush().has_value());
    ASSERT_EQ(r.runs.size(), 2u) << before;
  }
}

}  // namespace
