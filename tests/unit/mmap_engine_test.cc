// SPDX-License-Identifier: GPL-3.0-or-later
// The mapped engine (THINMETA_IO_ENGINE=mmap): views point at the bytes the file holds, bounds
// are errors, writes are seen through the mapping, a file truncated under the mapping ends the
// process with one line and exit status 1, and a walk over views visits what a walk over
// copies visits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/io/mmap_engine.h"
#include "tests/unit/test_support.h"

namespace {

using namespace thinmeta;
using namespace thinmeta::pdata;

constexpr BlockAddr kBlocks = 512;

class MmapEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(
        thinmeta::test::write_pattern_image("/tmp/thinmeta-mmap-XXXXXX", kBlocks, false, &path_));
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  std::unique_ptr<IoEngine> open(EngineKind kind, bool writable = false) {
    OpenOptions oo;
    oo.engine = kind;
    oo.writable = writable;
    auto io = open_engine(path_, oo);
    EXPECT_TRUE(io.has_value()) << io.error().what;
    return io ? std::move(*io) : nullptr;
  }

  static BlockAddr holds(const std::uint8_t* p) {
    BlockAddr first, last;
    std::memcpy(&first, p, 8);
    std::memcpy(&last, p + kBlockSize - 8, 8);
    return first == last ? first : ~BlockAddr{0};
  }

  std::string path_;
};

TEST_F(MmapEngineTest, ViewsAndCopiesHoldWhatTheFileHolds) {
  auto io = open(EngineKind::kMmap);
  ASSERT_TRUE(io);
  ASSERT_TRUE(io->has_views());
  ASSERT_EQ(io->nr_blocks(), kBlocks);
  std::mt19937 rng(5);
  for (int round = 0; round < 50; ++round) {
    std::vector<BlockAddr> addrs;
    for (std::size_t n = 1 + rng() % 100; n; --n) addrs.push_back(rng() % (kBlocks + 8));
    std::vector<const std::uint8_t*> views(addrs.size());
    std::vector<int> errs(addrs.size(), -1), errs2(addrs.size(), -1);
    ASSERT_TRUE(io->view_many(addrs, views.data(), errs));
    AlignedBuffer buf(addrs.size());
    io->read_many(addrs, buf.data(), errs2);
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      if (addrs[i] >= kBlocks) {
        EXPECT_EQ(errs[i], EINVAL);
        EXPECT_EQ(views[i], nullptr);
        EXPECT_EQ(errs2[i], EINVAL);
        continue;
      }
      ASSERT_EQ(errs[i], 0);
      ASSERT_EQ(errs2[i], 0);
      EXPECT_EQ(holds(views[i]), addrs[i]);
      EXPECT_EQ(std::memcmp(views[i], buf.block(i), kBlockSize), 0);
    }
  }
}

TEST_F(MmapEngineTest, OnlyTheMappedEngineHandsOutViews) {
  for (EngineKind kind : {EngineKind::kSync, EngineKind::kAio, EngineKind::kLibaio}) {
    auto io = open(kind);
    ASSERT_TRUE(io);
    EXPECT_FALSE(io->has_views());
    BlockAddr a = 3;
    const std::uint8_t* v = nullptr;
    int err = 0;
    EXPECT_FALSE(io->view_many(std::span<const BlockAddr>(&a, 1), &v, std::span<int>(&err, 1)));
  }
}

TEST_F(MmapEngineTest, WritesAreSeenThroughTheMapping) {
  auto io = open(EngineKind::kMmap, /*writable=*/true);
  ASSERT_TRUE(io);
  BlockAddr a = 17;
  const std::uint8_t* v = nullptr;
  int err = -1;
  ASSERT_TRUE(io->view_many(std::span<const BlockAddr>(&a, 1), &v, std::span<int>(&err, 1)));
  ASSERT_EQ(err, 0);
  EXPECT_EQ(holds(v), 17u);
  AlignedBuffer b(1);
  std::memset(b.data(), 0x5a, kBlockSize);
  ASSERT_TRUE(io->write(a, b.data()).has_value());
  ASSERT_TRUE(io->flush().has_value());
  EXPECT_EQ(std::memcmp(v, b.data(), kBlockSize), 0);
  EXPECT_TRUE(io->write(kBlocks, b.data()).has_value() == false);
}

// A file that shrinks under the mapping: touching a block past the new end is one line on
// stderr and exit status 1 (not SIGBUS), after the fault hook ran.
TEST_F(MmapEngineTest, TruncatedUnderTheMappingIsOneLineAndExitOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto touch_after_truncate = [&] {
    auto io = open(EngineKind::kMmap);
    set_mapped_fault_hook([] {
      ssize_t n = ::write(2, "hook ran\n", 9);
      (void)n;
    });
    BlockAddr a = kBlocks - 2;
    const std::uint8_t* v = nullptr;
    int err = -1;
    io->view_many(std::span<const BlockAddr>(&a, 1), &v, std::span<int>(&err, 1));
    if (::truncate(path_.c_str(), 4 * kBlockSize) != 0) std::abort();
    volatile std::uint8_t x = v[100];
    (void)x;
    std::abort();  // not reached
  };
  EXPECT_EXIT(touch_after_truncate(), ::testing::ExitedWithCode(1),
              "Couldn't read metadata block 510 of '/tmp/thinmeta-mmap-.*': the file was "
              "truncated, or the read failed, while it was being read\nhook ran");
}

// A fault outside every mapping is still a SIGBUS (the handler does not swallow it).
TEST_F(MmapEngineTest, OtherBusErrorsStillKill) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto io = open(EngineKind::kMmap);  // the handler is installed
  EXPECT_EXIT(::raise(SIGBUS), ::testing::KilledBySignal(SIGBUS), "");
}

// The same damaged tree walked over views and over copies, with the batch split over
// workers: the same keys in the same order and the same damage.
TEST_F(MmapEngineTest, WalkOverViewsVisitsWhatAWalkOverCopiesVisits) {
  struct Collect : BtreeVisitor {
    std::vector<std::uint64_t> keys;
    std::vector<std::string> damage_seen;
    Flow leaf(const NodeContext&, const NodeView& n) override {
      for (std::uint32_t i = 0; i < n.nr_entries(); ++i) keys.push_back(n.key(i));
      return Flow::kContinue;
    }
    Flow damage(const Damage& d) override {
      damage_seen.push_back(std::to_string(d.lost.begin) + " " + d.what);
      return Flow::kContinue;
    }
  };
  {
    auto w = open(EngineKind::kSync, /*writable=*/true);
    ASSERT_TRUE(w);
    auto leaves = test::two_level_tree(*w, 200, 3);
    for (unsigned l : {0u, 63u, 64u, 150u, 199u})
      test::mutate_block(*w, leaves[l], [](std::uint8_t* b) { b[100] ^= 1; }, false);
    test::mutate_block(*w, leaves[20], [](std::uint8_t* b) { store_le64(b + 8, 3); });
  }
  WalkOptions o;
  o.check_fill = false;
  Collect copies, views;
  auto s = open(EngineKind::kSync);
  auto m = open(EngineKind::kMmap);
  ASSERT_TRUE(s && m);
  walk_btree(*s, 1, o, copies);
  walk_btree(*m, 1, o, views);
  EXPECT_EQ(copies.keys.size(), 194u * 3);
  EXPECT_EQ(views.keys, copies.keys);
  EXPECT_EQ(views.damage_seen, copies.damage_seen);
  EXPECT_EQ(views.damage_seen.size(), 6u);
  // A root beyond the end is damage, not a fault.
  Collect beyond;
  walk_btree(*m, kBlocks + 3, o, beyond);
  ASSERT_EQ(beyond.damage_seen.size(), 1u);
}

}  // namespace
