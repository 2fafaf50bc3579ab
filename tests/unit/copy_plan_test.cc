// SPDX-License-Identifier: GPL-3.0-or-later
// thin/copy_plan.h on hand-built mapping trees: a full plan, applied to an empty copy, and a
// delta plan, applied to a copy of BASE, both give SNAP block for block; delta plans carry only
// what differs; steps are ascending, joined, and clipped to the device size.
#include "thin/copy_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "test_support.h"
#include "thin/device_details.h"

namespace thinmeta {
namespace {

using pdata::BlockAddr;
using Map = std::map<std::uint64_t, std::uint64_t>;  // virtual -> data

// A bottom-level tree: leaves of 120 to 239 entries (non-root nodes must be a third full)
// under one internal node, or a lone leaf.
BlockAddr build(pdata::IoEngine& io, const Map& m, BlockAddr& next) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> kids, e;
  const std::size_t nr_leaves = std::max<std::size_t>(1, m.size() / 120);
  std::size_t leaf = 0, taken = 0;
  for (auto [v, d] : m) {
    e.emplace_back(v, thin::pack_block_time(d, 0));
    ++taken;
    if (leaf + 1 < nr_leaves && taken == m.size() * (leaf + 1) / nr_leaves) {
      BlockAddr at = next++;
      test::put_node(io, at, true, e);
      kids.emplace_back(e.front().first, at);
      e.clear();
      ++leaf;
    }
  }
  BlockAddr at = next++;
  test::put_node(io, at, true, e);
  kids.emplace_back(e.empty() ? 0 : e.front().first, at);
  if (kids.size() == 1) return kids[0].second;
  BlockAddr root = next++;
  test::put_node(io, root, false, kids);
  return root;
}

// Applies the steps to `copy` (vblock -> data block; absent = unprovisioned).
struct Apply final : thin::CopyPlanSink {
  explicit Apply(std::vector<std::optional<std::uint64_t>>& c) : img(c) {}
  Result<> copy_step(std::uint64_t v, std::uint64_t len) {
    EXPECT_GE(v, end) << "steps out of order";
    EXPECT_GT(len, 0u);
    EXPECT_LE(v + len, img.size()) << "step past the device size";
    end = v + len;
    return {};
  }
  Result<> copy(std::uint64_t v, std::uint64_t d, std::uint64_t len) override {
    EXPECT_FALSE(last_copy && v == end && d == last_d_end) << "copy runs not joined at " << v;
    THINMETA_CHECK(copy_step(v, len));
    for (std::uint64_t i = 0; i < len && v + i < img.size(); ++i) img[v + i] = d + i;
    last_copy = true;
    last_d_end = d + len;
    copied += len;
    return {};
  }
  Result<> unprovisioned(std::uint64_t v, std::uint64_t len) override {
    EXPECT_FALSE(!last_copy && steps && v == end) << "unprovisioned runs not joined at " << v;
    THINMETA_CHECK(copy_step(v, len));
    for (std::uint64_t i = 0; i < len && v + i < img.size(); ++i) img[v + i].reset();
    last_copy = false;
    zeroed += len;
    ++steps;
    return {};
  }
  std::vector<std::optional<std::uint64_t>>& img;
  std::uint64_t end = 0, last_d_end = 0, copied = 0, zeroed = 0, steps = 0;
  bool last_copy = false;
};

std::vector<std::optional<std::uint64_t>> image(const Map& m, std::uint64_t nr) {
  std::vector<std::optional<std::uint64_t>> out(nr);
  for (auto [v, d] : m)
    if (v < nr) out[v] = d;
  return out;
}

Map random_map(std::mt19937_64& rng, std::uint64_t nr, std::uint64_t& next_data) {
  Map m;
  for (std::uint64_t v = 0; v < nr;) {
    std::uint64_t run = 1 + rng() % 12;
    bool mapped = rng() % 2;
    for (std::uint64_t i = 0; i < run && v < nr; ++i, ++v)
      if (mapped) m[v] = next_data++;
    if (rng() % 5 == 0) next_data += 3;  // a jump in the data space inside a virtual run
  }
  return m;
}

TEST(CopyPlan, FullAndDeltaRebuildTheSnapshot) {
  std::mt19937_64 rng(14);
  for (int t = 0; t < 60; ++t) {
    auto io = pdata::make_memory_engine(2048);
    const std::uint64_t nr = 200 + rng() % 400;
    std::uint64_t next_data = 0;
    Map base = random_map(rng, nr + 20, next_data);  // a few mappings past the device size
    // SNAP: BASE with some blocks rewritten (new data), unmapped, or newly mapped.
    Map snap = base;
    for (std::uint64_t v = 0; v < nr + 20; ++v) {
      switch (rng() % 8) {
        case 0:
          snap[v] = next_data++;
          break;
        case 1:
          snap.erase(v);
          break;
        default:
          break;
      }
    }
    BlockAddr next = 10;
    BlockAddr base_root = build(*io, base, next), snap_root = build(*io, snap, next);
    test::put_node(*io, 1, true, {{3, base_root}, {7, snap_root}});

    auto want = image(snap, nr);
    auto full = std::vector<std::optional<std::uint64_t>>(nr, std::uint64_t{999999});  // junk
    Apply f(full);
    auto fs = thin::plan_copy(*io, 1, 7, std::nullopt, nr, f);
    ASSERT_TRUE(fs) << fs.error().what;
    EXPECT_EQ(full, want) << "full, case " << t;
    EXPECT_EQ(f.end, nr) << "a full plan covers the whole device";
    EXPECT_EQ(fs->copy_blocks + fs->unprovisioned_blocks, nr);

    auto delta = image(base, nr);
    Apply d(delta);
    auto ds = thin::plan_copy(*io, 1, 7, std::uint64_t{3}, nr, d);
    ASSERT_TRUE(ds) << ds.error().what;
    EXPECT_EQ(delta, want) << "delta, case " << t;
    std::uint64_t differ = 0;
    auto b = image(base, nr);
    for (std::uint64_t v = 0; v < nr; ++v) differ += b[v] != want[v];
    EXPECT_EQ(ds->copy_blocks + ds->unprovisioned_blocks, differ) << "delta carries only changes";
  }
}

TEST(CopyPlan, MissingDeviceAndEmptyDevice) {
  auto io = pdata::make_memory_engine(64);
  BlockAddr next = 10;
  BlockAddr empty = build(*io, {}, next);
  test::put_node(*io, 1, true, {{5, empty}});
  std::vector<std::optional<std::uint64_t>> c(16);
  Apply a(c);
  auto s = thin::plan_copy(*io, 1, 5, std::nullopt, 16, a);
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_EQ(s->unprovisioned_blocks, 16u);
  EXPECT_EQ(s->unprovisioned_runs, 1u);
  auto m = thin::plan_copy(*io, 1, 6, std::nullopt, 16, a);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().what, "thin device 6 not found in the metadata");
  EXPECT_FALSE(thin::plan_copy(*io, 1, 5, std::uint64_t{4}, 16, a));
}

}  // namespace
}  // namespace thinmeta
