// SPDX-License-Identifier: GPL-3.0-or-later
// PagedCounts against RunCounts (the sweep it replaces in the restorer): same runs of counts,
// sparse and dense pages, counts beyond a byte.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "persistent-data/space_map/paged_counts.h"
#include "persistent-data/space_map/space_map_format.h"

namespace pd = thinmeta::pdata;

namespace {

std::map<std::uint64_t, std::uint32_t> expand(const pd::CountSource& c) {
  std::map<std::uint64_t, std::uint32_t> m;
  c.for_each_run([&](std::uint64_t b, std::uint64_t len, std::uint32_t n) {
    EXPECT_GT(n, 0u);
    for (std::uint64_t k = 0; k < len; ++k) EXPECT_TRUE(m.emplace(b + k, n).second);
  });
  return m;
}

}  // namespace

TEST(PagedCounts, MatchesRunCountsOnRandomRuns) {
  for (std::uint64_t span : {std::uint64_t{3000}, std::uint64_t{200000}, std::uint64_t{1} << 34}) {
    std::mt19937_64 rng(span);
    pd::PagedCounts p;
    pd::RunCounts r;
    for (int i = 0; i < 20000; ++i) {
      std::uint64_t b = rng() % span, len = 1 + rng() % 40;
      std::uint32_t by = 1 + static_cast<std::uint32_t>(rng() % 3);
      p.add(b, len, by);
      r.add(b, len, by);
    }
    p.finish();
    r.finish();
    EXPECT_EQ(p.nr_nonzero(), r.nr_nonzero());
    EXPECT_EQ(p.nr_overflow(), r.nr_overflow());
    EXPECT_EQ(expand(p), expand(r));
  }
}

TEST(PagedCounts, CountsBeyondAByteAndAcrossPages) {
  pd::PagedCounts p;
  for (int i = 0; i < 300; ++i) p.add(16380, 10);  // crosses a page boundary, dense or not
  for (std::uint64_t b = 0; b < 16384; b += 2) p.add(b, 1);  // makes page 0 dense
  for (int i = 0; i < 300; ++i) p.add(16381, 1);
  p.finish();
  auto m = expand(p);
  EXPECT_EQ(m.at(16380), 301u);
  EXPECT_EQ(m.at(16381), 600u);
  EXPECT_EQ(m.at(16383), 300u);
  EXPECT_EQ(m.at(16384), 300u);
  EXPECT_EQ(m.at(16389), 300u);
  EXPECT_EQ(m.count(16390), 0u);
  EXPECT_EQ(m.at(2), 1u);
  EXPECT_EQ(m.count(3), 0u);
  EXPECT_EQ(p.nr_nonzero(), 8190u + 10u);
}

// Long runs of one count in dense pages (found 8 bytes a step), with every kind of end: a
// different count at each byte of a word, a 255 (count >= 255), the page's last block.
TEST(PagedCounts, LongDenseRunsEndWhereTheCountChanges) {
  for (std::uint64_t stop = 16300; stop < 16384; ++stop) {
    pd::PagedCounts p;
    pd::RunCounts r;
    auto both = [&](std::uint64_t b, std::uint64_t len, std::uint32_t by) {
      p.add(b, len, by);
      r.add(b, len, by);
    };
    for (std::uint64_t b = 0; b < 600; b += 2) both(b, 1, 1);  // dense page 0
    both(1000, stop - 1000, 2);
    both(stop - 37, 1, 300);
    both(stop - 20, 3, 1);
    p.finish();
    r.finish();
    EXPECT_EQ(p.nr_nonzero(), r.nr_nonzero());
    EXPECT_EQ(p.nr_overflow(), r.nr_overflow());
    EXPECT_EQ(expand(p), expand(r)) << stop;
  }
}

// fill_bitmap_entries against set_bitmap_entry one entry at a time: every start and length
// within and across words, each value, over a block with other entries set around them.
TEST(BitmapEntries, FillMatchesSettingEachEntry) {
  std::mt19937_64 rng(3);
  std::vector<std::uint8_t> a(4096), b(4096);
  for (int t = 0; t < 3000; ++t) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = b[i] = static_cast<std::uint8_t>(rng());
    std::uint64_t e = rng() % 16320;
    std::uint64_t n = t < 2000 ? rng() % 70 : rng() % (16320 - e + 1);
    n = std::min<std::uint64_t>(n, 16320 - e);
    unsigned v = static_cast<unsigned>(rng() % 4);
    pd::fill_bitmap_entries(a.data(), e, n, v);
    for (std::uint64_t k = 0; k < n; ++k) pd::set_bitmap_entry(b.data(), e + k, v);
    ASSERT_EQ(a, b) << e << " " << n << " " << v;
    if (n) {
      ASSERT_EQ(pd::bitmap_entry(a.data(), e + n - 1), v);
    }
  }
}

// Dense pages added to 8 blocks a step: runs of every length and start, counts crossing 128
// and 255 inside a word, `by` below and above 128.
TEST(PagedCounts, DenseAddsAcrossWordsAndCountLimits) {
  std::mt19937_64 rng(128);
  pd::PagedCounts p;
  pd::RunCounts r;
  auto both = [&](std::uint64_t b, std::uint64_t len, std::uint32_t by) {
    p.add(b, len, by);
    r.add(b, len, by);
  };
  for (std::uint64_t b = 0; b < 1200; b += 2) both(b, 1, 1);  // page 0 dense
  for (int i = 0; i < 3000; ++i) {
    std::uint64_t b = rng() % 400, len = 1 + rng() % 40;
    std::uint32_t by = rng() % 10 == 0 ? 100 + static_cast<std::uint32_t>(rng() % 60)
                                        : 1 + static_cast<std::uint32_t>(rng() % 3);
    both(b, len, by);
  }
  p.finish();
  r.finish();
  EXPECT_EQ(p.nr_nonzero(), r.nr_nonzero());
  EXPECT_EQ(p.nr_overflow(), r.nr_overflow());
  EXPECT_EQ(expand(p), expand(r));
}

// A dense page's totals (counted 8 bytes a word): every count from 0 to past 255, at every
// byte position of a word.
TEST(PagedCounts, DenseTotalsOfEveryCount) {
  pd::PagedCounts p;
  pd::RunCounts r;
  for (std::uint64_t b = 0; b < 16384; ++b) {  // page 0 dense; count b % 301 at b
    auto c = static_cast<std::uint32_t>(b % 301);
    if (!c) continue;
    p.add(b, 1, c);
    r.add(b, 1, c);
  }
  p.add(16383, 1, 2);
  r.add(16383, 1, 2);
  p.finish();
  r.finish();
  EXPECT_EQ(p.nr_nonzero(), r.nr_nonzero());
  EXPECT_EQ(p.nr_overflow(), r.nr_overflow());
  EXPECT_EQ(expand(p), expand(r));
}

// Runs jumping between pages that share a slot of the recent-pages cache (index % 256), and
// adds going on after the counts are moved (the cache moves with the pages; the moved-from
// object starts again empty).
TEST(PagedCounts, PagesSharingACacheSlotAndMoves) {
  std::mt19937_64 rng(256);
  pd::PagedCounts p;
  pd::RunCounts r;
  auto add = [&](pd::PagedCounts& to, std::uint64_t page, std::uint64_t off, std::uint64_t len) {
    std::uint64_t b = (page << pd::PagedCounts::kPageShift) + off;
    to.add(b, len);
    r.add(b, len);
  };
  const std::uint64_t pages[] = {0, 256, 512, 3, 259, 1000000};
  for (int i = 0; i < 5000; ++i) add(p, pages[rng() % 6], rng() % 16000, 1 + rng() % 30);
  pd::PagedCounts q(std::move(p));
  for (int i = 0; i < 2000; ++i) add(q, pages[rng() % 6], rng() % 16000, 1 + rng() % 30);
  pd::PagedCounts s;
  s.add(7, 1);
  s = std::move(q);
  for (int i = 0; i < 2000; ++i) add(s, pages[rng() % 6], rng() % 16000, 1 + rng() % 30);
  s.finish();
  r.finish();
  EXPECT_EQ(s.nr_nonzero(), r.nr_nonzero());
  EXPECT_EQ(expand(s), expand(r));
  pd::PagedCounts& again = p;  // moved from: empty, usable
  again.add(5, 2);
  again.finish();
  EXPECT_EQ(again.nr_nonzero(), 2u);
}

// The fast paths of add(): in sparse pages the step found from the last run's end (ascending
// runs, adjacent, with gaps, overlapping, and jumps back), in dense pages a run's last 1-7
// blocks added as one masked word (every end near the page's start and end, where the word
// would cross it, and with a count of 127/128 inside the word).
TEST(PagedCounts, AscendingRunsAndMaskedTails) {
  std::mt19937_64 rng(18);
  pd::PagedCounts p;
  pd::RunCounts r;
  auto both = [&](std::uint64_t b, std::uint64_t len, std::uint32_t by) {
    p.add(b, len, by);
    r.add(b, len, by);
  };
  std::uint64_t at = 16384 * 3;  // pages 3-5: sparse while few steps, then dense
  for (int i = 0; i < 6000; ++i) {
    std::uint64_t len = 1 + rng() % 20;
    both(at, len, 1 + static_cast<std::uint32_t>(rng() % 2));
    std::uint64_t r6 = rng() % 6;
    at = r6 == 0 ? at + len : r6 == 1 ? at + len + rng() % 5 : r6 == 2 ? at + len / 2
       : r6 == 3 ? at - std::min<std::uint64_t>(at - 16384 * 3, rng() % 300) : at + len + 1;
    if (at >= 16384 * 6 - 30) at = 16384 * 3 + rng() % 1000;
  }
  for (std::uint64_t b = 0; b < 16384; b += 2) both(b, 1, 1);  // page 0 dense
  for (std::uint64_t end = 1; end <= 40; ++end)
    for (std::uint64_t len = 1; len <= 9 && len <= end; ++len) {
      both(end - len, len, 1);
      both(16384 - end, len <= end ? len : end, 1);
    }
  both(200, 1, 126);  // 127 or 128 inside the word of later tails
  both(205, 1, 127);
  for (std::uint64_t b = 196; b < 210; ++b) both(b, 3, 1);
  p.finish();
  r.finish();
  EXPECT_EQ(p.nr_nonzero(), r.nr_nonzero());
  EXPECT_EQ(p.nr_overflow(), r.nr_overflow());
  EXPECT_EQ(expand(p), expand(r));
}
