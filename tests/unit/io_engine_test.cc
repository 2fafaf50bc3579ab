// SPDX-License-Identifier: GPL-3.0-or-later
// Every file engine (sync, io_uring, libaio) returns the bytes the file holds for any address
// list: runs, nearby blocks joined over gaps, repeats, descending order, blocks past the end;
// and two threads reading at once.
#include <gtest/gtest.h>
#include <mutex>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "tests/unit/test_support.h"

namespace {

using namespace thinmeta::pdata;

constexpr BlockAddr kBlocks = 2048;

class IoEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(
        thinmeta::test::write_pattern_image("/tmp/thinmeta-io-XXXXXX", kBlocks, true, &path_));
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  static bool holds(const std::uint8_t* p, BlockAddr b) {
    BlockAddr got;
    std::memcpy(&got, p + 8, 8);
    return got == b && p[7] == static_cast<std::uint8_t>(b * 31);
  }

  void check_reads(IoEngine& io, std::mt19937& rng) {
    for (int round = 0; round < 200; ++round) {
      std::vector<BlockAddr> addrs;
      BlockAddr b = rng() % kBlocks;
      std::size_t n = 1 + rng() % 300;
      for (std::size_t i = 0; i < n; ++i) {
        switch (rng() % 6) {
          case 0: b = rng() % (kBlocks + 4); break;          // anywhere, sometimes past the end
          case 1: b = b + 1 + rng() % 12; break;              // a small gap
          case 2: b = b > 3 ? b - rng() % 3 : b; break;       // back, or the same block again
          default: b = b + 1; break;                          // the next block
        }
        addrs.push_back(b);
      }
      AlignedBuffer buf(addrs.size());
      std::vector<int> errs(addrs.size(), -1);
      io.read_many(addrs, buf.data(), errs);
      for (std::size_t i = 0; i < addrs.size(); ++i) {
        if (addrs[i] >= kBlocks) {
          EXPECT_NE(errs[i], 0) << addrs[i];
        } else {
          ASSERT_EQ(errs[i], 0) << addrs[i];
          ASSERT_TRUE(holds(buf.block(i), addrs[i])) << "index " << i << " block " << addrs[i];
        }
      }
    }
  }

  std::string path_;
};

TEST_F(IoEngineTest, EveryEngineReadsWhatTheFileHolds) {
  for (EngineKind kind : {EngineKind::kSync, EngineKind::kAio, EngineKind::kLibaio}) {
    OpenOptions oo;
    oo.engine = kind;
    auto io = open_engine(path_, oo);
    ASSERT_TRUE(io.has_value()) << io.error().what;
    ASSERT_EQ((*io)->nr_blocks(), kBlocks);
    std::mt19937 rng(7);
    check_reads(**io, rng);
  }
}

TEST_F(IoEngineTest, TwoThreadsReadAtOnce) {
  for (EngineKind kind : {EngineKind::kAio, EngineKind::kLibaio}) {
    OpenOptions oo;
    oo.engine = kind;
    auto io = open_engine(path_, oo);
    ASSERT_TRUE(io.has_value()) << io.error().what;
    std::thread other([&] {
      std::mt19937 rng(1);
      check_reads(**io, rng);
    });
    std::mt19937 rng(2);
    check_reads(**io, rng);
    other.join();
  }
}

// Gap blocks a sink wants reach it with the right bytes, and the caller's blocks stay right.
TEST_F(IoEngineTest, GapBlocksGoToTheSink) {
  struct Sink final : GapSink {
    bool wants(BlockAddr b) const override { return b % 3 == 0; }
    void take(BlockAddr b, const std::uint8_t* p) override {
      std::lock_guard<std::mutex> lock(mu);
      ++taken;
      bad += !wants(b) || !holds(p, b);
    }
    std::mutex mu;
    std::size_t taken = 0, bad = 0;
  };
  for (EngineKind kind : {EngineKind::kAio, EngineKind::kLibaio, EngineKind::kSync}) {
    OpenOptions oo;
    oo.engine = kind;
    auto io = open_engine(path_, oo);
    ASSERT_TRUE(io.has_value()) << io.error().what;
    Sink sink;
    (*io)->set_gap_sink(&sink);
    std::thread other([&] {
      std::mt19937 rng(3);
      check_reads(**io, rng);
    });
    std::mt19937 rng(4);
    check_reads(**io, rng);
    other.join();
    (*io)->set_gap_sink(nullptr);
    EXPECT_GT(sink.taken, 100u);
    EXPECT_EQ(sink.bad, 0u);
    std::size_t before = sink.taken;
    check_reads(**io, rng);
    EXPECT_EQ(sink.taken, before);
  }
}

}  // namespace
