// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/data_runs.h"

#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "persistent-data/cpu_features.h"
#include "persistent-data/endian.h"

using namespace thinmeta;

namespace {

// Leaf values (data_block << 24 | time) of n mappings: runs of random lengths, broken by a
// gap, a step back, a repeat, or a jump of 2^32 + 1 (equal low halves); random times; the
// data block 2^40 - 1 followed by 0 (one more, modulo 2^40: not a run).
std::vector<std::uint8_t> make_values(std::mt19937_64& rng, std::uint32_t n, std::vector<std::uint64_t>& blocks) {
  std::vector<std::uint8_t> v(8ull * n + 64, 0xee);  // bytes past the values: garbage
  blocks.resize(n);
  std::uint64_t d = rng() % (1ull << 40);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (i) {
      switch (rng() % 8) {
        case 0: d += 2 + rng() % 5; break;
        case 1: d -= std::min<std::uint64_t>(d, 1 + rng() % 3); break;
        case 2: break;  // the same block again
        case 3: d += (1ull << 32) + 1; break;
        case 4: d = (1ull << 40) - 1 - rng() % 2; break;
        default: d += 1; break;
      }
      if (blocks[i - 1] == (1ull << 40) - 1 && rng() % 2) d = 0;
      d &= (1ull << 40) - 1;
    }
    blocks[i] = d;
    pdata::store_le64(v.data() + 8ull * i, d << 24 | (rng() & 0xffffff));
  }
  return v;
}

}  // namespace

TEST(DataRuns, RunsOfConsecutiveBlocksMatchAOneByOneJoin) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 4000; ++iter) {
    auto n = static_cast<std::uint32_t>(iter < 600 ? iter % 300 : rng() % 600);
    std::vector<std::uint64_t> blocks;
    std::vector<std::uint8_t> v = make_values(rng, n, blocks);
    std::vector<std::pair<std::uint32_t, std::uint32_t>> want, got;
    for (std::uint32_t i = 0; i < n;) {
      std::uint32_t e = i + 1;
      while (e < n && blocks[e] == blocks[e - 1] + 1) ++e;
      want.emplace_back(i, e - i);
      i = e;
    }
    thin::for_each_data_run(v.data(), n, [&](std::uint32_t first, std::uint32_t len) { got.emplace_back(first, len); });
    ASSERT_EQ(got, want) << "n " << n << " iter " << iter;
    if (n <= thin::kRunEndChunk) {  // the dispatched marks against the portable ones
      std::uint64_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 9, 9, 9}, d[4] = {};
      thin::data_run_ends(v.data(), n, a);
      thin::data_run_ends_portable(v.data(), n, b);
      for (std::uint32_t w = 0; w < (n + 63) / 64; ++w) ASSERT_EQ(a[w], b[w]) << "n " << n << " word " << w;
      // With the largest time (thin_check's leaf decode): the same marks, the model's maximum.
      std::uint32_t want_time = 0, got_time = 1, plain_time = 2;
      for (std::uint32_t i = 0; i < n; ++i)
        want_time = std::max(want_time, static_cast<std::uint32_t>(pdata::load_le64(v.data() + 8ull * i) & 0xffffff));
      thin::data_run_ends(v.data(), n, c, got_time);
      thin::data_run_ends_portable(v.data(), n, d, plain_time);
      ASSERT_EQ(got_time, want_time) << "n " << n;
      ASSERT_EQ(plain_time, want_time) << "n " << n;
      for (std::uint32_t w = 0; w < (n + 63) / 64; ++w) ASSERT_EQ(c[w], b[w]) << "n " << n << " word " << w;
      for (std::uint32_t w = 0; w < (n + 63) / 64; ++w) ASSERT_EQ(d[w], b[w]) << "n " << n << " word " << w;
    }
  }
}

TEST(DataRuns, MappingRunEndsNeedKeysAndBlocksInTheRegion) {
  // Keys ascending with gaps, data blocks as above; regions holding every block, all but one
  // (at each position) or none. The AVX2 marks (where the CPU has them) against the portable
  // ones, and those against a one-by-one model.
  std::mt19937_64 rng(11);
  for (int iter = 0; iter < 3000; ++iter) {
    auto n = static_cast<std::uint32_t>(iter <= 256 ? iter : 1 + rng() % thin::kRunEndChunk);
    std::vector<std::uint64_t> blocks;
    std::vector<std::uint8_t> v = make_values(rng, n, blocks), k(8ull * n + 64, 0xee);
    std::vector<std::uint64_t> keys(n);
    std::uint64_t key = rng() % 1000;
    for (std::uint32_t i = 0; i < n; ++i) {
      key += rng() % 5 == 0 ? 2 + rng() % 3 : 1;
      keys[i] = key;
      pdata::store_le64(k.data() + 8ull * i, key);
    }
    std::uint64_t lo = ~0ull, hi = 0;
    for (std::uint64_t b : blocks) lo = std::min(lo, b), hi = std::max(hi, b);
    std::uint64_t begin = n ? lo : 0, len = n ? hi - lo + 1 : 0;
    bool all_in = true;
    if (n && iter % 3 == 1) {  // one block outside: above, or below
      std::uint64_t cut = blocks[rng() % n];
      if (rng() % 2) len = cut - begin; else begin = cut + 1, len = hi >= begin ? hi - begin + 1 : 0;
      all_in = false;
    }
    std::uint64_t want[4] = {}, a[4] = {9, 9, 9, 9}, b[4] = {8, 8, 8, 8};
    for (std::uint32_t i = 0; i < n; ++i) {
      all_in &= blocks[i] - begin < len;
      bool go_on = i + 1 < n && blocks[i + 1] == blocks[i] + 1 && keys[i + 1] == keys[i] + 1;
      want[i / 64] |= std::uint64_t{!go_on} << (i % 64);
    }
    bool got = thin::mapping_run_ends_portable(k.data(), v.data(), n, begin, len, b);
    ASSERT_EQ(got, all_in) << iter;
    if (all_in) {
      for (std::uint32_t w = 0; w < (n + 63) / 64; ++w) ASSERT_EQ(b[w], want[w]) << iter;
    }
    if (thinmeta::pdata::cpu_has_avx2()) {
      ASSERT_EQ(thin::mapping_run_ends(k.data(), v.data(), n, begin, len, a), all_in) << iter;
      if (all_in) {
        for (std::uint32_t w = 0; w < (n + 63) / 64; ++w) ASSERT_EQ(a[w], want[w]) << iter << " word " << w;
      }
    }
  }
}
