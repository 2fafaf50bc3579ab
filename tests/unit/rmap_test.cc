// SPDX-License-Identifier: GPL-3.0-or-later
// thin_rmap's logic on hand-built mapping trees: runs joined per device across leaves, the
// region filter (one region: the fast path; several: the search), the order (by data block;
// ties in the order of 0.9.0's std::sort) and the printed lines.
#include <gtest/gtest.h>

#include <stdio.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "test_support.h"
#include "thin/device_details.h"
#include "thin/rmap.h"
#include "thin/text_output.h"

namespace {

using namespace thinmeta;
using Entries = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

std::uint64_t bt(std::uint64_t data, std::uint32_t time = 0) {
  return thin::pack_block_time(data, time);
}

// Devices 1 and 7; device 1 has two leaves (a run crosses the leaf boundary; non-root
// leaves hold at least a third of their capacity), device 7 maps some of device 1's data
// blocks (equal data begins) and its own.
std::unique_ptr<pdata::IoEngine> pool() {
  auto io = pdata::make_memory_engine(64);
  // Device 1: virt 0..103 -> data 100..203 (over leaves 10 and 11), virt 110 -> data 50,
  // virt 111..112 -> data 52..53 (the time changes: rmap ignores it), virt 200..279 -> data
  // 1000..1079.
  Entries a, b;
  for (std::uint64_t v = 0; v < 100; ++v) a.emplace_back(v, bt(100 + v));
  for (std::uint64_t v = 100; v < 104; ++v) b.emplace_back(v, bt(100 + v));
  b.emplace_back(110, bt(50));
  b.emplace_back(111, bt(52));
  b.emplace_back(112, bt(53, 1));
  for (std::uint64_t v = 200; v < 280; ++v) b.emplace_back(v, bt(800 + v));
  test::put_node(*io, 10, true, a);
  test::put_node(*io, 11, true, b);
  test::put_node(*io, 12, false, {{0, 10}, {100, 11}});
  // Device 7 (a root leaf): virt 5..6 -> data 100..101 (device 1's data begin), 8 -> 7.
  test::put_node(*io, 20, true, {{5, bt(100)}, {6, bt(101)}, {8, bt(7)}});
  // Top level: device id -> subtree root.
  test::put_node(*io, 30, true, {{1, 12}, {7, 20}});
  return io;
}

std::string lines(const thin::ReverseRuns& runs) {
  FILE* f = tmpfile();
  {
    thin::TextOutput out(fileno(f));
    thin::write_reverse_runs(runs, out);
    EXPECT_TRUE(out.flush());
  }
  std::string s;
  char buf[4096];
  rewind(f);
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  fclose(f);
  return s;
}

TEST(ReverseMap, WholeRangeJoinsRunsAndSortsByDataBlock) {
  auto io = pool();
  auto runs = thin::reverse_map(*io, 30, {{0, 2000}});
  ASSERT_TRUE(runs.has_value()) << runs.error().what;
  // Device 1's 0..103 run is joined across its two leaves; 50 and 52..53 are separate runs.
  // Ties on data block 100: the order std::sort gives this walk-order sequence (0.9.0
  // sorts the same sequence the same way), here device 1 first.
  EXPECT_EQ(lines(*runs),
            "data 7..8 -> thin(7) 8..9\n"
            "data 50..51 -> thin(1) 110..111\n"
            "data 52..54 -> thin(1) 111..113\n"
            "data 100..204 -> thin(1) 0..104\n"
            "data 100..102 -> thin(7) 5..7\n"
            "data 1000..1080 -> thin(1) 200..280\n");
}

TEST(ReverseMap, OneRegionCutsRunsAtItsEdges) {
  auto io = pool();
  auto runs = thin::reverse_map(*io, 30, {{101, 103}});
  ASSERT_TRUE(runs.has_value()) << runs.error().what;
  EXPECT_EQ(lines(*runs),
            "data 101..103 -> thin(1) 1..3\n"
            "data 101..102 -> thin(7) 6..7\n");
  // An empty result, and a region starting at 0 that ends before every block.
  auto none = thin::reverse_map(*io, 30, {{0, 7}});
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(lines(*none), "");
}

TEST(ReverseMap, SeveralOverlappingRegionsAreOneFilter) {
  auto io = pool();
  // 50..53 and 52..101 overlap (merged into 50..101); 7..8 is separate.
  auto runs = thin::reverse_map(*io, 30, {{52, 101}, {7, 8}, {50, 53}});
  ASSERT_TRUE(runs.has_value()) << runs.error().what;
  EXPECT_EQ(lines(*runs),
            "data 7..8 -> thin(7) 8..9\n"
            "data 50..51 -> thin(1) 110..111\n"
            "data 52..54 -> thin(1) 111..113\n"
            "data 100..101 -> thin(1) 0..1\n"
            "data 100..101 -> thin(7) 5..6\n");
}

TEST(ReverseMap, DamagedLeafIsAnError) {
  auto io = pool();
  test::mutate_block(*io, 11, [](std::uint8_t* b) { b[200] ^= 1; }, false);
  auto runs = thin::reverse_map(*io, 30, {{0, 1000}});
  ASSERT_FALSE(runs.has_value());
  EXPECT_EQ(runs.error().code, Errc::kDamage);
}

TEST(ReverseMap, LinesWithTheLargestNumbers) {
  thin::ReverseRuns runs;
  runs.devs.push_back(std::numeric_limits<std::uint64_t>::max());
  const std::uint64_t big = (std::uint64_t{1} << 40) - 1;  // the largest data block
  runs.push_back(thin::ReverseRun{big - 5, std::numeric_limits<std::uint64_t>::max() - 5, 5, 0});
  runs.push_back(thin::ReverseRun{0, 0, 1, 0});
  EXPECT_EQ(lines(runs),
            "data 1099511627770..1099511627775 -> thin(18446744073709551615) "
            "18446744073709551610..18446744073709551615\n"
            "data 0..1 -> thin(18446744073709551615) 0..1\n");
}

TEST(ReverseMap, RunsJoinedFourAtATimeBreakWhereTheyShould) {
  // One device, two full leaves of runs of every length 1..13 broken by a key gap, a data gap,
  // a time change (no break) or a data step back, at every position in the four-mapping steps
  // of the joining loop; regions ending at each offset of a run and several regions. The lines
  // must be those of a one-mapping-at-a-time join.
  auto io = pdata::make_memory_engine(64);
  Entries all;
  std::uint64_t v = 0, d = 5000;
  for (unsigned len = 1; all.size() < 500; len = len % 13 + 1) {
    for (unsigned j = 0; j < len && all.size() < 500; ++j) all.emplace_back(v++, bt(d++, j % 3 == 2));
    switch (all.size() % 4) {
      case 0: v += 2; break;        // key gap
      case 1: d += 3; break;        // data gap
      case 2: d -= 40; break;       // data back (blocks shared with nothing)
      default: v += 1; d += 1;      // both: a new run still
    }
  }
  Entries a(all.begin(), all.begin() + 250), b(all.begin() + 250, all.end());
  test::put_node(*io, 10, true, a);
  test::put_node(*io, 11, true, b);
  test::put_node(*io, 12, false, {{0, 10}, {b.front().first, 11}});
  test::put_node(*io, 30, true, {{3, 12}});
  auto model = [&](const std::vector<thin::DataRegion>& rs) {
    auto in = [&](std::uint64_t x) {
      for (const auto& r : rs)
        if (x >= r.begin && x < r.end) return true;
      return false;
    };
    thin::ReverseRuns out;
    out.devs.push_back(3);
    std::uint64_t cd = 0, cv = 0, cl = 0;
    for (auto [k, val] : all) {
      std::uint64_t x = thin::unpack_block_time(val).data_block;
      if (!in(x)) continue;
      if (cl && k == cv + cl && x == cd + cl) {
        ++cl;
        continue;
      }
      if (cl) out.push_back(thin::ReverseRun{cd, cv, cl, 0});
      cd = x, cv = k, cl = 1;
    }
    if (cl) out.push_back(thin::ReverseRun{cd, cv, cl, 0});
    std::sort(out.begin(), out.end(), [](const thin::ReverseRun& p, const thin::ReverseRun& q) {
      return p.data_begin < q.data_begin;
    });
    return lines(out);
  };
  std::vector<std::vector<thin::DataRegion>> cases = {{{0, 1u << 20}}, {{5000, 5100}}};
  for (std::uint64_t end = 5000; end < 5040; ++end) cases.push_back({{4990, end}});
  for (std::uint64_t begin = 4990; begin < 5030; ++begin) cases.push_back({{begin, 6000}});
  cases.push_back({{5003, 5011}, {5020, 5029}, {5100, 5400}});
  for (const auto& rs : cases) {
    auto runs = thin::reverse_map(*io, 30, rs);
    ASSERT_TRUE(runs.has_value()) << runs.error().what;
    ASSERT_EQ(lines(*runs), model(rs)) << rs.front().begin << ".." << rs.front().end;
  }
  EXPECT_NE(model({{0, 1u << 20}}).size(), 0u);
}

}  // namespace
