// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "persistent-data/btree/btree_builder.h"
#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/io/io_engine.h"

namespace pd = thinmeta::pdata;

namespace {

struct Collect : pd::BtreeVisitor {
  std::vector<std::uint32_t> leaf_sizes;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> entries;
  unsigned max_depth = 0, damaged = 0;
  pd::Flow leaf(const pd::NodeContext& at, const pd::NodeView& n) override {
    leaf_sizes.push_back(n.nr_entries());
    max_depth = std::max(max_depth, at.depth);
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) entries.emplace_back(n.key(i), n.value64(i));
    return pd::Flow::kContinue;
  }
  pd::Flow damage(const pd::Damage&) override {
    ++damaged;
    return pd::Flow::kContinue;
  }
};

}  // namespace

TEST(BtreeBuilder, LevelSizesFollowTheBulkLoadRule) {
  // Every node full except the last two, which are at least half full.
  for (std::uint64_t n : {1ull, 251ull, 252ull, 253ull, 503ull, 504ull, 505ull, 756ull, 1000ull,
                          100000ull}) {
    auto sizes = pd::level_sizes(n, 252);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      sum += sizes[i];
      EXPECT_LE(sizes[i], 252u);
      if (i + 2 < sizes.size()) {
        EXPECT_EQ(sizes[i], 252u) << n;
      }
      if (sizes.size() > 1) {
        EXPECT_GE(sizes[i], 126u) << n;
      }
    }
    EXPECT_EQ(sum, n);
    EXPECT_EQ(pd::level_nodes(n, 252), sizes.size());
  }
  EXPECT_EQ(pd::level_sizes(253, 252), (std::vector<std::uint32_t>{126, 127}));
  EXPECT_EQ(pd::level_sizes(504, 252), (std::vector<std::uint32_t>{252, 252}));
}

TEST(BtreeBuilder, BuildsValidTreesOfThePlannedSize) {
  for (std::uint64_t n : {0ull, 1ull, 252ull, 253ull, 5000ull, 70000ull}) {
    auto io = pd::make_memory_engine(2000);
    pd::BlockWriter w(io.get(), 1, 2000);
    pd::BtreeBuilder b(w, 8);
    for (std::uint64_t k = 0; k < n; ++k) b.add_u64(k * 3, k + 7);
    pd::BlockAddr root = b.finish();
    ASSERT_TRUE(w.finish().has_value());
    EXPECT_EQ(w.next() - 1, pd::tree_nodes(n, 8)) << n;
    pd::LeafLevelCounter c(8);
    c.add(n);
    EXPECT_EQ(c.finish(), pd::tree_nodes(n, 8)) << n;

    Collect v;
    pd::walk_btree(*io, root, pd::WalkOptions{}, v);  // checks shape, fill, key ranges
    EXPECT_EQ(v.damaged, 0u) << n;
    ASSERT_EQ(v.entries.size(), n);
    for (std::uint64_t k = 0; k < n; ++k) EXPECT_EQ(v.entries[k], std::make_pair(k * 3, k + 7));
    if (n == 70000) {
      EXPECT_EQ(v.max_depth, 2u);  // 278 leaves -> 2 internal nodes -> root
    }
  }
}

TEST(BtreeBuilder, SharedNodesAreLinkedNotCopied) {
  auto io = pd::make_memory_engine(100);
  pd::BlockWriter w(io.get(), 1, 100);
  pd::BtreeBuilder shared(w, 8);
  for (std::uint64_t k = 100; k < 200; ++k) shared.add_u64(k, k);
  pd::BlockAddr leaf = shared.finish();  // one leaf of 100 entries
  pd::BtreeBuilder a(w, 8);
  for (std::uint64_t k = 0; k < 90; ++k) a.add_u64(k, k);
  a.add_node(100, leaf);
  for (std::uint64_t k = 200; k < 300; ++k) a.add_u64(k, k);
  pd::BlockAddr root = a.finish();
  ASSERT_TRUE(w.finish().has_value());
  pd::LeafLevelCounter c(8);
  c.add(90);
  c.add_node();
  c.add(100);
  EXPECT_EQ(c.finish(), w.next() - 2);  // all but the shared leaf
  Collect v;
  pd::walk_btree(*io, root, pd::WalkOptions{}, v);
  EXPECT_EQ(v.damaged, 0u);
  EXPECT_EQ(v.leaf_sizes, (std::vector<std::uint32_t>{90, 100, 100}));
  EXPECT_EQ(v.entries.size(), 290u);
}

TEST(BtreeBuilder, WriterReportsRunningOutOfSpace) {
  auto io = pd::make_memory_engine(10);
  pd::BlockWriter w(io.get(), 1, 5);
  pd::BtreeBuilder b(w, 8);
  for (std::uint64_t k = 0; k < 2000; ++k) b.add_u64(k, k);
  b.finish();
  auto r = w.finish();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, thinmeta::Errc::kNoSpace);
}

// The run forms write the same blocks as one add per entry: runs of every length around the
// leaf room (0, 1, up to 2 leaves and past), starting at every fill of the pending leaves,
// values stepping across bit 24 (a mapping's data block) and wrapping modulo 2^64; 4-byte
// runs.
TEST(BtreeBuilder, RunAddsWriteWhatSingleAddsWrite) {
  auto image = [](std::uint32_t vsize, bool runs, auto&& feed) {
    auto io = pd::make_memory_engine(400);
    pd::BlockWriter w(io.get(), 1, 400);
    pd::BtreeBuilder b(w, vsize);
    feed(b, runs);
    pd::BlockAddr root = b.finish();
    EXPECT_TRUE(w.finish().has_value());
    std::vector<std::uint8_t> all(std::size_t{w.next()} * pd::kBlockSize + 8);
    for (pd::BlockAddr a = 1; a < w.next(); ++a)
      EXPECT_TRUE(io->read(a, all.data() + a * pd::kBlockSize).has_value());
    std::memcpy(all.data() + all.size() - 8, &root, 8);
    return all;
  };
  const std::uint64_t lengths[] = {0, 1, 2, 3, 125, 126, 127, 251, 252, 253, 503, 504, 505, 1000};
  for (std::uint64_t first : {0ull, 1ull, 100ull, 251ull, 252ull, 300ull, 503ull}) {
    for (std::uint64_t len : lengths) {
      auto feed64 = [&](pd::BtreeBuilder& b, bool runs) {
        std::uint64_t key = 5;
        for (std::uint64_t i = 0; i < first; ++i, ++key) b.add_u64(key, i * 7);
        const std::uint64_t step = 1ull << 24, start = ~0ull - 3 * step;  // wraps
        if (runs) {
          b.add_u64_run(key, start, step, len);
        } else {
          for (std::uint64_t i = 0; i < len; ++i) b.add_u64(key + i, start + i * step);
        }
        key += len + 10;
        if (runs) {
          b.add_u64_run(key, 42, 0, 300);
        } else {
          for (std::uint64_t i = 0; i < 300; ++i) b.add_u64(key + i, 42);
        }
      };
      EXPECT_EQ(image(8, true, feed64), image(8, false, feed64)) << first << " " << len;
      auto feed32 = [&](pd::BtreeBuilder& b, bool runs) {
        std::uint64_t key = 0;
        for (std::uint64_t i = 0; i < first; ++i, ++key) b.add_u32(key, 3);
        if (runs) {
          b.add_u32_run(key, 4000000000u, len);
        } else {
          for (std::uint64_t i = 0; i < len; ++i) b.add_u32(key + i, 4000000000u);
        }
      };
      EXPECT_EQ(image(4, true, feed32), image(4, false, feed32)) << first << " " << len;
    }
  }
}

TEST(BtreeBuilder, FixedAddsOnAnotherValueSizeCutOrPad) {
  // add_u64 on 16-byte values: the number, then zeros (no bytes from past the number); add_u32
  // on 8-byte values the same; add_u64 on 4-byte values: its low 4 bytes.
  struct Case {
    std::uint32_t vsize;
    bool u64;
  };
  for (Case c : {Case{16, true}, Case{24, true}, Case{8, false}, Case{4, true}}) {
    auto io = pd::make_memory_engine(16);
    pd::BlockWriter w(io.get(), 1, 16);
    pd::BtreeBuilder b(w, c.vsize);
    for (std::uint64_t k = 0; k < 3; ++k) {
      if (c.u64)
        b.add_u64(k, 0x0102030405060708ull + k);
      else
        b.add_u32(k, 0x01020304u + static_cast<std::uint32_t>(k));
    }
    pd::BlockAddr root = b.finish();
    ASSERT_TRUE(w.finish().has_value());
    std::vector<std::uint8_t> blk(pd::kBlockSize);
    ASSERT_TRUE(io->read(root, blk.data()).has_value());
    pd::NodeView n(blk.data());
    ASSERT_EQ(n.nr_entries(), 3u);
    for (std::uint32_t i = 0; i < 3; ++i) {
      const std::uint8_t* v = n.value(i);
      const std::uint64_t want = c.u64 ? 0x0102030405060708ull + i : 0x01020304u + i;
      for (std::uint32_t j = 0; j < c.vsize; ++j)
        EXPECT_EQ(v[j], j < 8 ? static_cast<std::uint8_t>(want >> (8 * j)) : 0)
            << c.vsize << " " << i << " " << j;
    }
  }
}
