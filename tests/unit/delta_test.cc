// SPDX-License-Identifier: GPL-3.0-or-later
// BtreeCursor on hand-built trees, and the thin_delta piece logic against a brute-force model
// (per-block classification with 0.9.0's run rules), including trees that share subtrees.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <set>
#include <map>
#include <optional>
#include <random>

#include "persistent-data/btree/btree_cursor.h"
#include "test_support.h"
#include "thin/delta.h"
#include "thin/device_details.h"

namespace thinmeta::thin {
bool operator==(const DiffPiece& a, const DiffPiece& b) {
  return a.kind == b.kind && a.begin == b.begin && a.len == b.len && a.left_data == b.left_data &&
         a.right_data == b.right_data;
}
}  // namespace thinmeta::thin

namespace thinmeta {
namespace {

using pdata::BtreeCursor;
using At = BtreeCursor::At;
using pdata::BlockAddr;
using Map = std::map<std::uint64_t, std::uint64_t>;  // virtual -> data

TEST(BtreeCursor, VisitsEveryEntryInOrderAndSkips) {
  auto io = pdata::make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 5, 100);
  BtreeCursor c(*io, 8);
  c.reset(1);
  std::uint64_t expect = 0;
  for (;;) {
    auto leaf = c.next_leaf();
    ASSERT_TRUE(leaf.has_value());
    if (!*leaf) break;
    for (std::uint32_t i = 0; i < (*leaf)->nr_entries(); ++i) EXPECT_EQ((*leaf)->key(i), expect++);
    c.skip_leaf();
  }
  EXPECT_EQ(expect, 500u);

  c.reset(1);
  ASSERT_EQ(c.at(), At::kSubtree);
  ASSERT_TRUE(c.descend().has_value());
  ASSERT_EQ(c.at(), At::kSubtree);
  EXPECT_EQ(c.subtree(), leaves[0]);
  EXPECT_EQ(c.subtree_range().end, std::optional<std::uint64_t>(100));
  c.skip();
  c.skip();
  EXPECT_EQ(c.subtree(), leaves[2]);
  EXPECT_EQ(c.subtree_lo(), 200u);
  ASSERT_TRUE(c.descend().has_value());
  ASSERT_EQ(c.at(), At::kEntry);
  EXPECT_EQ(c.key(), 200u);
  EXPECT_EQ(c.value64(), 2000u);
  c.skip_leaf();
  EXPECT_EQ(c.subtree(), leaves[3]);
  c.skip();
  c.skip();
  EXPECT_EQ(c.at(), At::kEnd);
}

TEST(BtreeCursor, DamageIsAnError) {
  auto io = pdata::make_memory_engine(64);
  auto leaves = test::two_level_tree(*io, 3, 100);
  test::mutate_block(*io, leaves[1], [](std::uint8_t* b) { b[100] ^= 1; }, false);
  BtreeCursor c(*io, 8);
  c.reset(1);
  ASSERT_TRUE(c.descend().has_value());
  ASSERT_TRUE(c.descend().has_value());
  c.skip_leaf();
  auto r = c.descend();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kDamage);
  EXPECT_NE(r.error().what.find("checksum"), std::string::npos);
  // A child pointing back at its parent is a cycle, not a loop.
  test::put_node(*io, 20, false, {{0, 20}});
  c.reset(20);
  ASSERT_TRUE(c.descend().has_value());
  r = c.descend();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("cycle"), std::string::npos);
}

// Three levels, every node's children consecutive on disk: groups grow to their largest, the
// next group and the next sibling's first children are read ahead on the helper thread, and
// nodes are used where the batch read them (no copy). Every entry comes out once, in order;
// a bad checksum anywhere (a leaf of the first group, of a grown group read ahead, a sibling's
// first leaf read ahead with it, an internal node read ahead as the owner of its children)
// stops the walk at that block with an error naming it, and nothing of it is used.
TEST(BtreeCursor, BatchesAndReadAheadKeepEveryEntryAndCheckEveryBlock) {
  constexpr unsigned kMid = 3, kLeaves = 240, kPer = 100;  // at least max_entries / 3
  auto build = [&](pdata::IoEngine& io) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> root;
    for (unsigned m = 0; m < kMid; ++m) {
      std::vector<std::pair<std::uint64_t, std::uint64_t>> mid;
      for (unsigned l = 0; l < kLeaves; ++l) {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
        for (unsigned k = 0; k < kPer; ++k) {
          std::uint64_t key = (std::uint64_t{m} * kLeaves + l) * kPer + k;
          e.emplace_back(key, key * 10);
        }
        BlockAddr at = 10 + m * kLeaves + l;
        test::put_node(io, at, true, e);
        mid.emplace_back(e.front().first, at);
      }
      test::put_node(io, 2 + m, false, mid);
      root.emplace_back(mid.front().first, 2 + m);
    }
    test::put_node(io, 1, false, root);
  };
  // Walks the tree at 1; returns the entries seen in order and the error, if any.
  auto walk = [](pdata::IoEngine& io, std::vector<std::uint64_t>& keys) -> Result<> {
    BtreeCursor c(io, 8);
    c.reset(1);
    for (;;) {
      THINMETA_TRY(auto leaf, c.next_leaf());
      if (!leaf) return {};
      for (std::uint32_t i = 0; i < leaf->nr_entries(); ++i) {
        EXPECT_EQ(leaf->value64(i), leaf->key(i) * 10);
        keys.push_back(leaf->key(i));
      }
      c.skip_leaf();
    }
  };
  {
    auto io = pdata::make_memory_engine(1024);
    build(*io);
    std::vector<std::uint64_t> keys;
    auto r = walk(*io, keys);
    ASSERT_TRUE(r.has_value()) << r.error().what;
    ASSERT_EQ(keys.size(), std::size_t{kMid} * kLeaves * kPer);
    for (std::size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(keys[i], i);
  }
  for (BlockAddr bad : {BlockAddr{10 + 5}, BlockAddr{10 + 200}, BlockAddr{10 + kLeaves + 3},
                        BlockAddr{3}, BlockAddr{4}}) {
    auto io = pdata::make_memory_engine(1024);
    build(*io);
    test::mutate_block(*io, bad, [](std::uint8_t* b) { b[200] ^= 1; }, false);
    std::vector<std::uint64_t> keys;
    auto r = walk(*io, keys);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, Errc::kDamage);
    EXPECT_NE(r.error().what.find("checksum"), std::string::npos) << r.error().what;
    EXPECT_NE(r.error().what.find("(block " + std::to_string(bad) + ")"), std::string::npos)
        << r.error().what;
    // Every entry before the damaged block, and none after.
    std::uint64_t first_lost = bad >= 10 ? (bad - 10) * kPer : (bad - 2) * kLeaves * kPer;
    ASSERT_EQ(keys.size(), first_lost) << bad;
    for (std::size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(keys[i], i);
  }
}

// --- the piece logic ------------------------------------------------------------------------

class Collect : public thin::DiffSink {
 public:
  Result<> piece(const thin::DiffPiece& p) override {
    out.push_back(p);
    return {};
  }
  Result<> complete() override { return {}; }
  std::vector<thin::DiffPiece> out;
};

// The reference semantics: 0.9.0 turns each side into runs, then cuts at every run boundary
// of either side (FORMAT.md §14). Computed here directly from the runs.
std::vector<thin::DiffPiece> model(const Map& l, const Map& r) {
  auto runs = [](const Map& m) {
    std::vector<std::array<std::uint64_t, 3>> rs;  // vbegin, dbegin, len
    for (auto [v, d] : m) {
      if (!rs.empty() && rs.back()[0] + rs.back()[2] == v && rs.back()[1] + rs.back()[2] == d)
        ++rs.back()[2];
      else
        rs.push_back({v, d, 1});
    }
    return rs;
  };
  auto lr = runs(l), rr = runs(r);
  std::vector<thin::DiffPiece> out;
  std::size_t i = 0, j = 0;
  std::array<std::uint64_t, 3> a{}, b{};
  auto emit = [&](thin::DiffKind k, std::uint64_t v, std::uint64_t ld, std::uint64_t rd,
                  std::uint64_t n) { out.push_back({k, v, n, ld, rd}); };
  for (;;) {
    if (!a[2] && i < lr.size()) a = lr[i++];
    if (!b[2] && j < rr.size()) b = rr[j++];
    if (!a[2] && !b[2]) break;
    if (!b[2] || (a[2] && a[0] < b[0])) {
      std::uint64_t n = b[2] ? std::min(a[2], b[0] - a[0]) : a[2];
      emit(thin::DiffKind::kLeftOnly, a[0], a[1], 0, n);
      a = {a[0] + n, a[1] + n, a[2] - n};
    } else if (!a[2] || b[0] < a[0]) {
      std::uint64_t n = a[2] ? std::min(b[2], a[0] - b[0]) : b[2];
      emit(thin::DiffKind::kRightOnly, b[0], 0, b[1], n);
      b = {b[0] + n, b[1] + n, b[2] - n};
    } else {
      std::uint64_t n = std::min(a[2], b[2]);
      emit(a[1] == b[1] ? thin::DiffKind::kSame : thin::DiffKind::kDifferent, a[0], a[1], b[1], n);
      a = {a[0] + n, a[1] + n, a[2] - n};
      b = {b[0] + n, b[1] + n, b[2] - n};
    }
  }
  for (auto& p : out) {
    if (p.kind == thin::DiffKind::kLeftOnly) p.right_data = 0;
    if (p.kind == thin::DiffKind::kRightOnly) p.left_data = 0;
  }
  return out;
}

std::vector<thin::DiffPiece> pieces_of(const Map& l, const Map& r) {
  Collect c;
  thin::PieceBuilder b(c);
  auto li = l.begin();
  auto ri = r.begin();
  while (li != l.end() || ri != r.end()) {
    if (ri == r.end() || (li != l.end() && li->first < ri->first)) {
      EXPECT_TRUE(b.add(li->first, li->second, std::nullopt).has_value());
      ++li;
    } else if (li == l.end() || ri->first < li->first) {
      EXPECT_TRUE(b.add(ri->first, std::nullopt, ri->second).has_value());
      ++ri;
    } else {
      EXPECT_TRUE(b.add(li->first, li->second, ri->second).has_value());
      ++li;
      ++ri;
    }
  }
  EXPECT_TRUE(b.finish().has_value());
  return c.out;
}


Map random_map(std::mt19937_64& rng, std::uint64_t span) {
  Map m;
  std::uint64_t d = rng() % 100;
  for (std::uint64_t v = 0; v < span; ++v) {
    if (rng() % 4 == 0) continue;
    if (rng() % 5 == 0) d = rng() % 200;
    m[v] = d++;
  }
  return m;
}

TEST(DeltaPieces, MatchTheRunModel) {
  std::mt19937_64 rng(7);
  for (int t = 0; t < 300; ++t) {
    Map l = random_map(rng, 60), r = t % 3 ? random_map(rng, 60) : l;
    if (t % 3 == 1)
      for (auto& [v, d] : r)
        if (l.count(v) && rng() % 3) d = l[v];
    EXPECT_EQ(pieces_of(l, r), model(l, r)) << "case " << t;
  }
}

// Leaves of `per` entries of `m`, under one root (at `root`); blocks from `next`.
BlockAddr build_tree(pdata::IoEngine& io, const Map& m, unsigned per, BlockAddr root,
                     BlockAddr& next, std::vector<BlockAddr>& leaves) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> kids, e;
  auto flush = [&]() {
    if (e.empty()) return;
    BlockAddr at = next++;
    test::put_node(io, at, true, e);
    kids.emplace_back(e.front().first, at);
    leaves.push_back(at);
    e.clear();
  };
  for (auto [v, d] : m) {
    e.emplace_back(v, thin::pack_block_time(d, 0));
    if (e.size() == per) flush();
  }
  flush();
  test::put_node(io, root, false, kids);
  return root;
}

TEST(DeltaTrees, SharedSubtreesGiveTheSameAnswer) {
  std::mt19937_64 rng(11);
  for (int t = 0; t < 40; ++t) {
    auto io = pdata::make_memory_engine(512);
    Map l = random_map(rng, 3000);
    while (l.size() % 150) l.erase(std::prev(l.end()));  // full leaves only
    BlockAddr next = 10;
    std::vector<BlockAddr> ll, rl;
    build_tree(*io, l, 150, 1, next, ll);
    // Right: a copy of the left tree whose root points at the left's leaves except a few,
    // which are rewritten; boundaries of runs straddle the shared leaves.
    Map r = l;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> kids;
    std::vector<Map> parts(ll.size());
    {
      std::size_t k = 0, n = 0;
      for (auto [v, d] : l) {
        parts[k][v] = d;
        if (++n == 150) ++k, n = 0;
      }
    }
    for (std::size_t k = 0; k < ll.size(); ++k) {
      if (rng() % 3 == 0) {
        Map p = parts[k];
        for (auto& [v, d] : p)
          if (rng() % 4 == 0) d = (rng() % 2) ? d + 1 : 5000 + v;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
        for (auto [v, d] : p) {
          e.emplace_back(v, thin::pack_block_time(d, 1));
          r[v] = d;
        }
        BlockAddr at = next++;
        test::put_node(*io, at, true, e);
        kids.emplace_back(p.begin()->first, at);
      } else {
        kids.emplace_back(parts[k].begin()->first, ll[k]);
      }
    }
    test::put_node(*io, 2, false, kids);
    for (auto [a, b] : {std::pair<BlockAddr, BlockAddr>{1, 2}, {2, 1}, {1, 1}}) {
      Collect c;
      auto res = thin::diff_trees(*io, a, b, c);
      ASSERT_TRUE(res.has_value()) << res.error().what;
      const Map& lm = a == 1 ? l : r;
      const Map& rm = b == 1 ? l : r;
      EXPECT_EQ(c.out, model(lm, rm)) << "case " << t;
    }
  }
}


// Counts the blocks read through it.
class CountingEngine final : public pdata::IoEngine {
 public:
  explicit CountingEngine(pdata::IoEngine& io) : io_(io) {}
  BlockAddr nr_blocks() const override { return io_.nr_blocks(); }
  void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                 std::span<int> errs) override {
    reads += addrs.size();
    io_.read_many(addrs, bufs, errs);
  }
  Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) override {
    return io_.write_many(addrs, bufs);
  }
  Result<> flush() override { return io_.flush(); }
  std::atomic<std::size_t> reads{0};

 private:
  pdata::IoEngine& io_;
};

// A snapshot that shares all but a few leaves with its origin (as the kernel makes them):
// what the cursors' read-ahead takes beside the blocks the delta needs stays small; two trees
// of 250 consecutive leaves that share nothing are read exactly once, in growing groups.
TEST(DeltaTrees, ReadsInProportionToTheChange) {
  std::mt19937_64 rng(5);
  auto mem = pdata::make_memory_engine(1024);
  Map l = random_map(rng, 50000);
  while (l.size() % 150) l.erase(std::prev(l.end()));
  BlockAddr next = 10;
  std::vector<BlockAddr> ll;
  build_tree(*mem, l, 150, 1, next, ll);
  ASSERT_GE(ll.size(), 200u);
  ASSERT_LE(ll.size(), 252u);  // one root
  std::vector<std::pair<std::uint64_t, std::uint64_t>> kids;
  std::size_t k = 0;
  Map r = l;
  const std::set<std::size_t> changed{7, 100, 180};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> e;
  for (auto it = l.begin(); it != l.end(); ++k) {
    e.clear();
    for (unsigned n = 0; n < 150; ++n, ++it) e.emplace_back(it->first, thin::pack_block_time(it->second + 1, 1));
    if (changed.count(k)) {
      for (auto [v, d] : e) r[v] = thin::unpack_block_time(d).data_block;
      BlockAddr at = next++;
      test::put_node(*mem, at, true, e);
      kids.emplace_back(e.front().first, at);
    } else {
      kids.emplace_back(e.front().first, ll[k]);
    }
  }
  test::put_node(*mem, 2, false, kids);
  CountingEngine io(*mem);
  Collect c;
  ASSERT_TRUE(thin::diff_trees(io, 1, 2, c).has_value());
  EXPECT_EQ(c.out, model(l, r));
  // 2 roots, then per changed leaf: the right one (alone at its address) and a group of at
  // most 16 from the left one on.
  // Shared leaves are read once (their mappings are reported as the same); beside them, the
  // 2 roots and per changed leaf the right one and a first group of at most 16 from the left
  // one on (the cursor of before read 64 consecutive children: 443 blocks here).
  EXPECT_LE(io.reads.load(), 2 + ll.size() + changed.size() * (1 + 16));

  // No sharing: every leaf of both trees is read once.
  Map r2;
  for (auto [v, d] : l) r2[v] = d + 7;
  std::vector<BlockAddr> rl;
  build_tree(*mem, r2, 150, 3, next, rl);
  CountingEngine io2(*mem);
  Collect c2;
  ASSERT_TRUE(thin::diff_trees(io2, 1, 3, c2).has_value());
  EXPECT_EQ(c2.out, model(l, r2));
  EXPECT_EQ(io2.reads.load(), 2 + ll.size() + rl.size());
}

}  // namespace
}  // namespace thinmeta
