// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump's four-a-step run extender (thin/run_extend.h): the SSE2 loop and the portable
// loop both take what a model says (the whole steps of four from i in which every entry goes
// on: key and data block +1, the time unchanged), on leaves with runs broken at every position
// (key gap, data gap, time change) and near the largest data block a value holds.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "persistent-data/endian.h"
#include "thin/run_extend.h"

namespace {

using namespace thinmeta;

struct Leaf {
  std::vector<std::uint8_t> keys, vals;
  std::vector<std::uint64_t> k, d;
  std::vector<std::uint32_t> t;
  void add(std::uint64_t key, std::uint64_t data, std::uint32_t time) {
    k.push_back(key), d.push_back(data), t.push_back(time);
    keys.resize(keys.size() + 8);
    vals.resize(vals.size() + 8);
    pdata::store_le64(keys.data() + keys.size() - 8, key);
    pdata::store_le64(vals.data() + vals.size() - 8, thin::pack_block_time(data, time));
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(k.size()); }
};

// What the extender must take from entry i with the run's next mapping (key, data, time).
std::uint32_t model(const Leaf& l, std::uint32_t i, std::uint32_t nr, std::uint64_t key,
                    std::uint64_t data, std::uint32_t time) {
  if (data + (nr - i) + 3 > thin::kMaxDataBlock) return i;
  std::uint32_t k = i;
  while (k + 4 <= nr) {
    bool all = true;
    for (std::uint32_t j = k; j < k + 4; ++j)
      all = all && l.k[j] == key + (j - i) && l.d[j] == data + (j - i) && l.t[j] == time;
    if (!all) break;
    k += 4;
  }
  return k;
}

void expect_all_agree(const Leaf& l) {
  const std::uint32_t n = l.size();
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t nr : {n, std::min(n, i + 5), std::min(n, i + 9)}) {
      // The run's next mapping as entry i itself (a run that goes on), its key, data block or
      // time off by one.
      for (int off = 0; off < 4; ++off) {
        const std::uint64_t key = l.k[i] + (off == 1), data = l.d[i] + (off == 2);
        const std::uint32_t time = l.t[i] + (off == 3);
        const auto* ks = l.keys.data();
        const auto* vs = l.vals.data();
        const std::uint32_t want = model(l, i, nr, key, data, time);
        ASSERT_EQ(thin::extend_run4(ks, vs, i, nr, key, data, time), want) << i;
        ASSERT_EQ(thin::extend_run4_portable(ks, vs, i, nr, key, data, time), want) << i;
      }
    }
}

TEST(RunExtend, SimdTakesWhatTheModelTakes) {
  for (int kind = 0; kind < 3; ++kind)
    for (std::uint64_t len = 1; len <= 13; ++len) {
      Leaf l;
      std::uint64_t k = 100, d = 5000;
      std::uint32_t t = 7;
      while (l.size() < 120) {
        for (std::uint64_t i = 0; i < len; ++i) l.add(k++, d++, t);
        switch (kind) {
          case 0: k += 3; break;   // key gap
          case 1: d += 7; break;   // data gap
          default: t ^= 1; break;  // time change (a break with the time only)
        }
      }
      expect_all_agree(l);
    }
}

TEST(RunExtend, RandomLeaves) {
  std::mt19937_64 rng(20);
  for (int iter = 0; iter < 40; ++iter) {
    Leaf l;
    std::uint64_t k = rng() >> 1, d = rng() % (1ull << 39);
    std::uint32_t t = 3;
    const std::uint32_t n = 1 + rng() % 254;
    for (std::uint32_t i = 0; i < n; ++i) {
      l.add(k, d, t);
      const unsigned r = rng() % 40;
      k += 1 + (r == 0);
      d += r == 1 ? 9 : 1;
      if (r == 2) t = rng() % 5;
      if (r == 3) d -= 2;
      if (r == 4) d ^= 1ull << 30;  // a bit flip in the block field only
    }
    expect_all_agree(l);
  }
}

TEST(RunExtend, NearTheLargestDataBlock) {
  // The run would pass 2^40 - 1: the extender takes nothing (a wrapped packed value would
  // match data block 0); below that it takes the whole steps.
  for (std::uint64_t top : {thin::kMaxDataBlock, thin::kMaxDataBlock - 8, thin::kMaxDataBlock - 40}) {
    Leaf l;
    for (std::uint64_t i = 0; i < 16; ++i) l.add(i, (top - 15 + i) & thin::kMaxDataBlock, 1);
    for (std::uint64_t i = 0; i < 8; ++i) l.add(16 + i, i, 1);  // then blocks 0.. (no run)
    expect_all_agree(l);
  }
}

}  // namespace
