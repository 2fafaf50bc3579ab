// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/check/leaf_runs.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "persistent-data/endian.h"
#include "persistent-data/io/block.h"

using namespace thinmeta;
using thin::check_detail::decode_leaf_runs;
using thin::check_detail::LeafRuns;

namespace {

// The decoder thin_check had before runs were decoded apart: one pass, runs of consecutive
// in-range blocks, first beyond / newer entries.
LeafRuns reference(const pdata::NodeView& n, std::uint64_t nr_data, std::uint32_t pool_time) {
  LeafRuns out;
  std::uint64_t run_begin = 0, run_len = 0;
  for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
    thin::BlockTime bt = thin::unpack_block_time(n.value64(i));
    if (bt.data_block >= nr_data) {
      if (!out.beyond++) out.first_beyond_key = n.key(i), out.first_beyond = bt;
    } else if (run_len && bt.data_block == run_begin + run_len) {
      ++run_len;
    } else {
      if (run_len) out.runs[out.nr_runs++] = {run_begin, run_len};
      run_begin = bt.data_block;
      run_len = 1;
    }
    if (bt.time > pool_time && !out.newer++) out.first_newer_key = n.key(i), out.first_newer = bt;
  }
  if (run_len) out.runs[out.nr_runs++] = {run_begin, run_len};
  return out;
}

void expect_same(const LeafRuns& a, const LeafRuns& b) {
  ASSERT_EQ(a.nr_runs, b.nr_runs);
  for (std::uint32_t r = 0; r < a.nr_runs; ++r) {
    EXPECT_EQ(a.runs[r].begin, b.runs[r].begin) << r;
    EXPECT_EQ(a.runs[r].len, b.runs[r].len) << r;
  }
  EXPECT_EQ(a.beyond, b.beyond);
  EXPECT_EQ(a.newer, b.newer);
  if (a.beyond) {
    EXPECT_EQ(a.first_beyond_key, b.first_beyond_key);
    EXPECT_EQ(a.first_beyond.data_block, b.first_beyond.data_block);
    EXPECT_EQ(a.first_beyond.time, b.first_beyond.time);
  }
  if (a.newer) {
    EXPECT_EQ(a.first_newer_key, b.first_newer_key);
    EXPECT_EQ(a.first_newer.data_block, b.first_newer.data_block);
    EXPECT_EQ(a.first_newer.time, b.first_newer.time);
  }
}

}  // namespace

TEST(LeafRuns, MatchTheOnePassDecoder) {
  std::mt19937_64 rng(29);
  pdata::AlignedBuffer buf(1);
  const std::uint32_t max = pdata::max_entries_for(thin::kMappingValueSize);
  for (int t = 0; t < 3000; ++t) {
    std::uint8_t* p = buf.data();
    std::memset(p, 0, pdata::kBlockSize);
    auto nr = static_cast<std::uint32_t>(t % 50 == 0 ? 0 : 1 + rng() % max);
    pdata::store_le32(p + 4, pdata::kNodeLeaf);
    pdata::store_le32(p + 16, nr);
    pdata::store_le32(p + 20, max);
    pdata::store_le32(p + 24, thin::kMappingValueSize);
    const std::uint64_t nr_data = 1 + rng() % 5000;
    // Every 7th leaf: times near the largest (24 bits), some newer than the pool.
    const bool high = t % 7 == 3;
    const auto pool_time = static_cast<std::uint32_t>(high ? thin::kMaxTime - 1 : rng() % 8);
    // Runs of consecutive blocks, some reaching past nr_data, times mostly <= pool_time.
    std::uint64_t d = rng() % nr_data;
    for (std::uint32_t i = 0; i < nr; ++i) {
      if (rng() % 8 == 0) d = rng() % (nr_data + (t % 4 == 0 ? 50 : 1));
      auto time = static_cast<std::uint32_t>(t % 5 == 0 ? rng() % 10 : rng() % (pool_time + 1));
      if (high)
        time = static_cast<std::uint32_t>(thin::kMaxTime - (rng() % 64 == 0 ? 0 : 1 + rng() % 3));
      if (t % 11 == 5 && i % 13 == 0) d = rng() % nr_data;  // runs broken at every offset
      if (t % 97 == 0) d = thin::kMaxDataBlock - (nr - i);  // the largest blocks
      pdata::store_le64(p + 32 + 8 * i, 10 * i + 3);
      pdata::store_le64(p + 32 + 8 * max + 8 * i, thin::pack_block_time(d, time));
      ++d;
    }
    pdata::NodeView n(p);
    LeafRuns got;
    decode_leaf_runs(n, nr_data, pool_time, got);
    expect_same(got, reference(n, nr_data, pool_time));
    LeafRuns plain;  // the loop without SIMD, where the CPU would take SIMD
    decode_leaf_runs(n, nr_data, pool_time, plain, /*portable=*/true);
    expect_same(plain, reference(n, nr_data, pool_time));
  }
}
