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
    std::map<std::uint32_t, std::uint64_t> seen, want;
    rc.update_range(b, len, [&](std::uint32_t c, std::uint64_t n) {
      EXPECT_GE(n, 1u);
      seen[c] += n;
      return step(c, tag);
    });
    for (std::uint64_t k = 0; k < len; ++k) {
      ++want[model[b + k]];
      model[b + k] = step(model[b + k], tag);
    }
    ASSERT_EQ(seen, want) << i;
  }
  for (auto& [b, c] : model) ASSERT_EQ(rc.get(b), c) << b;
  EXPECT_EQ(rc.nr_nonzero(), model.size());
}

static void update_range_over_every_page_form(bool byte_pages) {
  // Six pages, each starting in one form: absent, sparse (with a count in the global map),
  // 2 bits (with counts >= 3 in its list), bytes (with counts >= 255 in the global map), then
  // ranges across words and pages, short and over whole pages, with transitions to 0, 1, 2,
  // 3..254 and >= 255 (pages change form mid-range). Each call must see every block's old
  // count once (n summed by count) and leave the model's counts.
  constexpr std::uint64_t kPages = 6, kN = kPages * RefCounts::kPageBlocks;
  RefCounts rc(kN);
  if (byte_pages) rc.prefer_byte_pages();  // page 2 then starts as bytes, not 2 bits
  std::vector<std::uint32_t> model(kN);
  std::mt19937_64 rng(23);
  auto put = [&](std::uint64_t b, std::uint32_t c) {
    model[b] = c;
    rc.set(b, c);
  };
  const std::uint64_t P = RefCounts::kPageBlocks;
  for (std::uint64_t o = 0; o < 200; ++o) put(P + o * 37, 1 + o % 4);
  put(P + 9999, 300000);  // sparse: a far count
  for (std::uint64_t o = 0; o < P; ++o) put(2 * P + o, static_cast<std::uint32_t>(rng() % 3));
  for (std::uint64_t o = 0; o < 100; ++o) put(2 * P + rng() % P, 3 + o);
  for (std::uint64_t o = 0; o < P; ++o) put(3 * P + o, static_cast<std::uint32_t>(rng() % 6));
  for (std::uint64_t o = 0; o < 50; ++o) put(3 * P + rng() % P, 255 + o * 1000);
  for (std::uint64_t o = 0; o < P; o += 2) put(4 * P + o, 2);  // 2 bits, no list
  static const std::uint32_t kTo[] = {0, 1, 2, 1, 2, 3, 7, 254, 255, 256, 70000, 300000};
  for (int i = 0; i < 4000; ++i) {
    std::uint64_t len = i % 50 == 0 ? 1 + rng() % (2 * P + 100) : 1 + rng() % 80;
    std::uint64_t b = i % 5 == 0 ? (1 + rng() % (kPages - 1)) * P - rng() % 40  // across pages
                                 : rng() % kN;
    len = std::min(len, kN - b);
    // Mostly small counts (the 2-bit and byte loops); sometimes big ones (general steps).
    std::uint64_t seed = rng();
    bool big = i % 3 == 0;
    auto to = [&](std::uint32_t c) {
      std::uint64_t h = (c + 1) * 0x9E3779B97F4A7C15ull ^ seed;
      return big ? kTo[(h >> 32) % 12] : kTo[(h >> 32) % 5];
    };
    std::map<std::uint32_t, std::uint64_t> seen, want;
    rc.update_range(b, len, [&](std::uint32_t c, std::uint64_t n) {
      EXPECT_GE(n, 1u);
      seen[c] += n;
      return to(c);
    });
    for (std::uint64_t k = 0; k < len; ++k) {
      ++want[model[b + k]];
      model[b + k] = to(model[b + k]);
    }
    ASSERT_EQ(seen, want) << i;
    if (i % 500 == 0) {
      std::vector<std::uint32_t> got(kN);
      rc.get_range(0, got);
      ASSERT_EQ(got, model) << i;
    }
  }
  std::vector<std::uint32_t> got(kN);
  rc.get_range(0, got);
  ASSERT_EQ(got, model);
  std::uint64_t nz = 0, ovf = 0;
  for (std::uint32_t c : model) nz += c != 0, ovf += c >= 3;
  EXPECT_EQ(rc.nr_nonzero(), nz);
  EXPECT_EQ(rc.nr_overflow(), ovf);
}

TEST(RefCounts, UpdateRangeOverEveryPageFormAndBoundary) { update_range_over_every_page_form(false); }

TEST(RefCounts, UpdateRangeOverEveryPageFormAndBoundaryPreferringBytes) {
  update_range_over_every_page_form(true);
}

static void update_range_ls_state_machine(bool byte_pages) {
  // thin_ls's use: 0 unseen, 1 shared, k + 2 owned by device k alone; runs of devices 0..299
  // (owners past 253 reach the global map) over 2-bit and byte pages (or sparse pages turning
  // to bytes: byte_pages); the per-device exclusive counts kept by fn(c, n) against a
  // per-block model.
  constexpr std::uint64_t kN = 3 * RefCounts::kPageBlocks;
  RefCounts rc(kN);
  if (byte_pages) rc.prefer_byte_pages();
  std::vector<std::uint32_t> model(kN);
  std::vector<std::uint64_t> ex(300), want(300);
  std::mt19937_64 rng(31);
  for (int i = 0; i < 6000; ++i) {
    std::uint64_t b = rng() % kN, len = std::min<std::uint64_t>(1 + rng() % 40, kN - b);
    auto dev = static_cast<std::uint32_t>(i < 3000 ? rng() % 3 : rng() % 300);
    bool shared = rng() % 8 == 0;  // a leaf reached by several devices
    auto fn = [&](std::uint32_t c, std::uint64_t n) -> std::uint32_t {
      if (c == 0 && !shared) {
        ex[dev] += n;
        return dev + 2;
      }
      if (c >= 2) ex[c - 2] -= n;
      return 1;
    };
    rc.update_range(b, len, fn);
    for (std::uint64_t k = 0; k < len; ++k) {
      std::uint32_t& c = model[b + k];
      c = c == 0 && !shared ? dev + 2 : 1;
    }
  }
  std::fill(want.begin(), want.end(), 0);
  for (std::uint32_t c : model)
    if (c >= 2) ++want[c - 2];
  EXPECT_EQ(ex, want);
  std::vector<std::uint32_t> got(kN);
  rc.get_range(0, got);
  EXPECT_EQ(got, model);
}

TEST(RefCounts, UpdateRangeLsStateMachineCountsOwners) { update_range_ls_state_machine(false); }

TEST(RefCounts, UpdateRangeLsStateMachineCountsOwnersInBytePages) { update_range_ls_state_machine(true); }

TEST(RefCounts, UpdateRangeLongStretchesInBytePages) {
  // Byte pages (prefer_byte_pages: sparse pages turn to bytes on a long first touch or once
  // 256 entries take a block among them): stretches of one count longer than 16, ending at
  // every offset near a page's end (fewer than 16 bytes left to read), new counts written
  // over 1..40 blocks; fn's n summed by count against a model.
  constexpr std::uint64_t kN = 2 * RefCounts::kPageBlocks;
  RefCounts rc(kN);
  rc.prefer_byte_pages();
  std::vector<std::uint32_t> model(kN);
  std::mt19937_64 rng(41);
  rc.update_range(0, 3000, [](std::uint32_t, std::uint64_t) { return 5u; });  // first touch: bytes
  std::fill_n(model.begin(), 3000, 5u);
  const std::uint64_t P = RefCounts::kPageBlocks;
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t b = i % 3 == 0 ? P - 1 - rng() % 48 : (i % 3 == 1 ? 2 * P - 1 - rng() % 48 : rng() % kN);
    std::uint64_t len = std::min<std::uint64_t>(i % 4 == 0 ? 1 + rng() % 40 : 1 + rng() % 100, kN - b);
    auto to = static_cast<std::uint32_t>(rng() % 4);  // few values: long stretches form
    std::map<std::uint32_t, std::uint64_t> seen, want;
    rc.update_range(b, len, [&](std::uint32_t c, std::uint64_t n) {
      seen[c] += n;
      return to;
    });
    for (std::uint64_t k = 0; k < len; ++k) ++want[model[b + k]], model[b + k] = to;
    ASSERT_EQ(seen, want) << i;
  }
  std::vector<std::uint32_t> got(kN);
  rc.get_range(0, got);
  EXPECT_EQ(got, model);
  EXPECT_LE(rc.memory_bytes(), 2 * RefCounts::kPageBlocks + 64 * 1024);
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

TEST(RefCounts, AnyNonzeroAgreesWithGet) {
  // Pages sparse, 2 bits, bytes, and absent; ranges within a page, across pages and empty.
  RefCounts rc(1ull << 24);
  std::mt19937_64 rng(29);
  for (int i = 0; i < 40; ++i) rc.inc(rng() % RefCounts::kPageBlocks);     // sparse
  for (int i = 0; i < 3000; ++i) rc.inc(RefCounts::kPageBlocks + rng() % RefCounts::kPageBlocks);
  for (int d = 0; d < 300; ++d) rc.inc_range(2 * RefCounts::kPageBlocks + 64 * d, 8, 3);
  rc.prefer_byte_pages();
  for (int i = 0; i < 500; ++i) rc.set(4 * RefCounts::kPageBlocks + rng() % 4000, 3 + i % 300);
  // page 3 absent
  const std::uint64_t span = 5 * RefCounts::kPageBlocks;
  for (int t = 0; t < 3000; ++t) {
    std::uint64_t b = rng() % span, len = t % 3 ? rng() % 200 : rng() % (span - b);
    bool want = false;
    for (std::uint64_t x = b; x < b + len && !want; ++x) want = rc.get(x) != 0;
    ASSERT_EQ(rc.any_nonzero(b, len), want) << b << "+" << len;
  }
}

namespace thinmeta::pdata {
namespace {

// RefCounts::matches_bitmap against a block-by-block reading of its contract, over pages in
// every form (absent, sparse, 2 bits with a few counts >= 3, bytes, far counts) on both sides,
// with and without a tree, whole and with one entry, count or tree count changed.
TEST(RefCounts, MatchesBitmapAgreesWithABlockByBlockCompare) {
  constexpr std::uint64_t kLen = 16320, kPages = 6;
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 120; ++trial) {
    const std::uint64_t first = kLen * (rng() % 5);
    RefCounts expected(kPages * RefCounts::kPageBlocks), tree(kPages * RefCounts::kPageBlocks);
    std::vector<std::uint32_t> want(kLen), tc(kLen);  // expected and tree count per block
    const int form = trial % 6;  // how the region is filled
    for (std::uint64_t k = 0; k < kLen; ++k) {
      std::uint32_t c = 0;
      switch (form) {
        case 0: c = 0; break;                                            // no pages
        case 1: c = rng() % 50 == 0 ? 1 + rng() % 2 : 0; break;          // sparse, small
        case 2: c = static_cast<std::uint32_t>(rng() % 3); break;        // 2 bits
        case 3: c = rng() % 200 == 0 ? 3 + rng() % 4 : rng() % 3; break;  // 2 bits + a few >= 3
        case 4: c = static_cast<std::uint32_t>(rng() % 6); break;        // bytes
        default: c = rng() % 40 == 0 ? 3 : 0; break;                     // sparse with 3s
      }
      if (c) expected.set(first + k, c);
      want[k] = c;
      if (c >= 3) tc[k] = c;
    }
    if (trial % 12 == 5) {  // a far count, in both
      expected.set(first + 77, 400);
      want[77] = tc[77] = 400;
    }
    for (std::uint64_t k = 0; k < kLen; ++k)
      if (tc[k]) tree.set(first + k, tc[k]);
    std::vector<std::uint8_t> bm(kLen / 4);
    auto put = [&](std::uint64_t e, unsigned v) {
      std::uint8_t& byte = bm[e / 4];
      unsigned sh = 2 * (e % 4);
      byte = static_cast<std::uint8_t>((byte & ~(3u << sh)) | ((v >> 1 & 1) << sh) | ((v & 1) << (sh + 1)));
    };
    for (std::uint64_t k = 0; k < kLen; ++k) put(k, std::min<std::uint32_t>(want[k], 3));
    // The contract, block by block.
    auto model = [&](const std::vector<std::uint8_t>& bits, const RefCounts& ex,
                     const RefCounts* tr) -> std::optional<std::uint64_t> {
      std::uint64_t nz = 0;
      for (std::uint64_t k = 0; k < kLen; ++k) {
        unsigned v = ((bits[k / 4] >> (2 * (k % 4))) & 1) << 1 | ((bits[k / 4] >> (2 * (k % 4) + 1)) & 1);
        std::uint32_t t = tr ? tr->get(first + k) : 0, c = ex.get(first + k);
        bool ok = v == 3 ? (t != 0 && t == c) : (t == 0 && v == c);
        if (!ok) return std::nullopt;
        nz += v != 0;
      }
      return nz;
    };
    auto check = [&](const char* what) {
      auto got = expected.matches_bitmap(first, bm.data(), kLen, &tree);
      auto ref = model(bm, expected, &tree);
      if (got) {
        ASSERT_TRUE(ref) << what << " trial " << trial;  // never a wrong "agrees"
        ASSERT_EQ(*got, *ref) << what << " trial " << trial;
      } else if (ref) {  // declined although it agrees: only for far counts
        ASSERT_EQ(trial % 12, 5) << what << " trial " << trial;
      }
    };
    check("whole");
    if (trial % 12 != 5) {
      ASSERT_TRUE(expected.matches_bitmap(first, bm.data(), kLen, &tree)) << trial;
    }
    for (int m = 0; m < 6; ++m) {
      std::uint64_t k = m < 2 ? (m ? kLen - 1 : 0) : rng() % kLen;
      std::uint32_t c = want[k];
      if (m % 3 == 0) {  // the bitmap entry
        put(k, (std::min<std::uint32_t>(c, 3) + 1 + rng() % 3) % 4);
        check("bitmap");
        put(k, std::min<std::uint32_t>(c, 3));
      } else if (m % 3 == 1) {  // the computed count
        expected.set(first + k, c + 1);
        check("count");
        expected.set(first + k, c);
      } else {  // the tree count
        tree.set(first + k, tc[k] ? tc[k] + 1 : 3);
        check("tree");
        tree.set(first + k, tc[k]);
      }
    }
    // Without a tree: agrees exactly when no count is >= 3.
    auto got = expected.matches_bitmap(first, bm.data(), kLen, nullptr);
    auto ref = model(bm, expected, nullptr);
    ASSERT_EQ(got.has_value(), ref.has_value()) << trial;
  }
}

// set_sorted with groups of counts >= 3 landing on new pages (taken as bytes at once), far
// counts among them, then overwritten: same counts as set one by one.
TEST(RefCounts, SetSortedBigCountRunsMatchSetOneByOne) {
  std::mt19937_64 rng(37);
  RefCounts bulk(1ull << 24), one(1ull << 24);
  for (int leaf = 0; leaf < 300; ++leaf) {
    std::uint64_t b = rng() % (8 * RefCounts::kPageBlocks);
    std::vector<std::uint64_t> blocks;
    std::vector<std::uint32_t> counts;
    auto n = static_cast<std::size_t>(1 + rng() % 300);
    for (std::size_t i = 0; i < n; ++i) {
      b += 1 + (rng() % 8 == 0 ? rng() % 5 : 0);
      blocks.push_back(b);
      std::uint32_t c = leaf % 7 == 3 && rng() % 50 == 0 ? 255 + static_cast<std::uint32_t>(rng() % 1000)
                                                         : 3 + static_cast<std::uint32_t>(rng() % 4);
      counts.push_back(c);
      one.set(b, c);
    }
    bulk.set_sorted(blocks, counts);
  }
  std::vector<std::uint32_t> want(9 * RefCounts::kPageBlocks), got(want.size());
  one.get_range(0, want);
  bulk.get_range(0, got);
  ASSERT_EQ(got, want);
  EXPECT_EQ(bulk.nr_overflow(), one.nr_overflow());
}

}  // namespace
}  // namespace thinmeta::pdata

TEST(RefCounts, RunsAmongSparseEntriesMatchAMap) {
  // A snapshot's own blocks land between blocks counted before, in pages that stay sparse:
  // runs with no entry yet go in with one insert; runs over counted blocks go block by block.
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    RefCounts rc(1ull << 20);
    std::map<std::uint64_t, std::uint32_t> model;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 120; ++i) {
      std::uint64_t b = rng() % (2 * RefCounts::kPageBlocks) + (i % 7 == 0 ? RefCounts::kPageBlocks - 3 : 0);
      std::uint64_t len = 1 + rng() % (i % 5 == 0 ? 100 : 12);
      std::uint32_t by = i % 11 == 0 ? 300000 : 1 + static_cast<std::uint32_t>(rng() % 3);
      rc.inc_range(b, len, by);
      for (std::uint64_t k = 0; k < len; ++k) model[b + k] += by;
      if (i % 10) continue;
      std::vector<std::uint32_t> got(3 * RefCounts::kPageBlocks);
      rc.get_range(0, got);
      for (std::uint64_t x = 0; x < got.size(); ++x) {
        auto it = model.find(x);
        ASSERT_EQ(got[x], it == model.end() ? 0u : it->second) << seed << " " << i << " " << x;
      }
    }
    std::uint64_t seen = 0;
    rc.for_each_nonzero([&](std::uint64_t x, std::uint32_t c) {
      ++seen;
      EXPECT_EQ(c, model[x]) << x;
    });
    EXPECT_EQ(seen, model.size());
  }
}

TEST(RefCounts, TwoBitPageTurnsToBytesKeepingEveryCount) {
  // Counts 0, 1 and 2 in every pattern a 2-bit word can hold, then adds that push more than
  // a few to 3: the page takes a byte a block, each count copied from its 2 bits.
  RefCounts rc(1ull << 20);
  std::vector<std::uint32_t> model(RefCounts::kPageBlocks);
  std::mt19937_64 rng(5);
  for (std::uint64_t b = 0; b < model.size(); ++b) model[b] = static_cast<std::uint32_t>(rng() % 3);
  model[0] = 1;  // the page turns dense (2 bits) at once below
  for (std::uint64_t b = 0; b < model.size(); ++b)
    if (model[b]) rc.inc_range(b, 1, model[b]);
  for (std::uint64_t b = 4096; b < 4096 + 64; ++b) {
    rc.inc_range(b, 1, 1);
    ++model[b];
  }
  rc.inc_range(8000, 500, 1);
  for (std::uint64_t b = 8000; b < 8500; ++b) ++model[b];
  std::vector<std::uint32_t> got(model.size());
  rc.get_range(0, got);
  for (std::uint64_t b = 0; b < model.size(); ++b) ASSERT_EQ(got[b], model[b]) << b;
  EXPECT_GT(rc.nr_overflow(), 16u);
}

TEST(RefCounts, SetBytesMatchesSetOneByOne) {
  // Pages that stay sparse, turn 2-bit (with a few counts >= 3) or a byte a block, a page
  // counted before, and a short last page; with and without prefer_byte_pages().
  for (bool bytes : {false, true}) {
    std::vector<std::uint8_t> v(5 * RefCounts::kPageBlocks + 1000);
    std::mt19937_64 rng(bytes ? 9 : 8);
    for (std::size_t b = 0; b < v.size(); ++b) {
      std::size_t page = b / RefCounts::kPageBlocks;
      if (page == 0) v[b] = rng() % 40 == 0 ? static_cast<std::uint8_t>(1 + rng() % 254) : 0;
      else if (page == 1) v[b] = static_cast<std::uint8_t>(rng() % 3 + (rng() % 1000 == 0 ? 3 : 0));
      else if (page == 2) v[b] = static_cast<std::uint8_t>(rng() % 255);
      else v[b] = static_cast<std::uint8_t>(rng() % 4);
    }
    RefCounts a(1ull << 20), want(1ull << 20);
    if (bytes) a.prefer_byte_pages(), want.prefer_byte_pages();
    a.inc(3 * RefCounts::kPageBlocks + 7, 5);  // counted before: added to block by block
    want.inc(3 * RefCounts::kPageBlocks + 7, 5);
    std::vector<std::uint8_t> w = v;
    w[7 + 3 * RefCounts::kPageBlocks] = 0;  // set_bytes' promise: no count there yet
    a.set_bytes(RefCounts::kPageBlocks, std::span<const std::uint8_t>(w).subspan(RefCounts::kPageBlocks));
    a.set_bytes(0, std::span<const std::uint8_t>(w).first(RefCounts::kPageBlocks));
    for (std::size_t b = 0; b < w.size(); ++b)
      if (w[b]) want.set(b, w[b]);
    std::vector<std::uint32_t> ga(v.size() + 100), gw(v.size() + 100);
    a.get_range(0, ga);
    want.get_range(0, gw);
    for (std::size_t b = 0; b < ga.size(); ++b) ASSERT_EQ(ga[b], gw[b]) << bytes << " " << b;
    EXPECT_EQ(a.nr_nonzero(), want.nr_nonzero());
    EXPECT_EQ(a.nr_overflow(), want.nr_overflow());
    EXPECT_LT(a.memory_bytes(), want.memory_bytes() + 64 * 1024);
  }
}
