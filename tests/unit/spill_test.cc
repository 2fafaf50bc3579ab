// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/restore/spill.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace th = thinmeta::thin;
using thinmeta::Result;

namespace {

// Writes every event as a line, so that two streams compare as strings.
class Log final : public th::MetadataSink {
 public:
  Result<> begin_superblock(const th::SuperblockInfo& sb) override {
    return add("sb " + sb.uuid + " " + std::to_string(sb.trans_id) + " " +
               std::to_string(sb.nr_data_blocks) + " " +
               (sb.metadata_snap ? std::to_string(*sb.metadata_snap) : "-"));
  }
  Result<> end_superblock() override { return add("/sb"); }
  Result<> begin_device(const th::DeviceInfo& d) override {
    return add("dev " + std::to_string(d.dev_id) + " " + std::to_string(d.details.mapped_blocks) +
               " " + std::to_string(d.details.snapshotted_time));
  }
  Result<> end_device() override { return add("/dev"); }
  Result<> map(const th::MappingRun& r) override {
    return add("map " + std::to_string(r.thin_begin) + " " + std::to_string(r.data_begin) + " " +
               std::to_string(r.len) + " " + std::to_string(r.time));
  }
  Result<> begin_def(std::string_view name) override { return add("def " + std::string(name)); }
  Result<> end_def() override { return add("/def"); }

  std::string text;
  int fail_at = -1;  // the event that fails (test of inner errors)

 private:
  Result<> add(const std::string& line) {
    if (fail_at >= 0 && count_++ == fail_at)
      return thinmeta::fail(thinmeta::Errc::kBadFormat, "refused");
    text += line + "\n";
    return {};
  }
  int count_ = 0;
};

Result<> stream(th::MetadataSink& s, std::uint64_t nr_runs) {
  th::SuperblockInfo sb;
  sb.uuid = "u-1";
  sb.trans_id = 7;
  sb.nr_data_blocks = 1ull << 40;
  sb.metadata_snap = 123;
  THINMETA_CHECK(s.begin_superblock(sb));
  for (std::uint64_t dev = 0; dev < 3; ++dev) {
    THINMETA_CHECK(s.begin_device(th::DeviceInfo{dev * 1000, {nr_runs, 5, 1, 2}}));
    for (std::uint64_t i = 0; i < nr_runs; ++i)
      THINMETA_CHECK(s.map(th::MappingRun{i * 10, (1ull << 39) + i, i % 7 + 1, static_cast<std::uint32_t>(i)}));
    THINMETA_CHECK(s.end_device());
  }
  return s.end_superblock();
}

TEST(SpillTest, ReplaysTheStreamEventForEvent) {
  // 100,000 runs: a record of several buffers, records split across buffer ends.
  Log direct, first, second;
  ASSERT_TRUE(stream(direct, 100000).has_value());
  th::SpillSink spill(first);
  ASSERT_TRUE(stream(spill, 100000).has_value());
  ASSERT_TRUE(spill.complete());
  EXPECT_TRUE(th::SpillSink::check(&spill).has_value());
  EXPECT_EQ(first.text, direct.text);
  ASSERT_TRUE(spill.replay(second).has_value());
  EXPECT_EQ(second.text, direct.text);
}

TEST(SpillTest, InnerErrorsPassThroughAndLeaveNoRecord) {
  Log inner;
  inner.fail_at = 5;
  th::SpillSink spill(inner);
  auto r = stream(spill, 10);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().what, "refused");
  EXPECT_FALSE(spill.complete());
  Log out;
  EXPECT_FALSE(spill.replay(out).has_value());
  EXPECT_TRUE(out.text.empty());
}

TEST(SpillTest, SharedSubtreesAreNotRecorded) {
  Log inner;
  th::SpillSink spill(inner);
  th::SuperblockInfo sb;
  ASSERT_TRUE(spill.begin_superblock(sb).has_value());
  ASSERT_TRUE(spill.begin_def("x").has_value());
  ASSERT_TRUE(spill.end_def().has_value());
  ASSERT_TRUE(spill.end_superblock().has_value());
  EXPECT_FALSE(spill.complete());  // restored in memory: no second pass
  EXPECT_FALSE(spill.system_error());
  EXPECT_TRUE(th::SpillSink::check(&spill).has_value());
  EXPECT_EQ(inner.text, "sb  0 0 -\ndef x\n/def\n/sb\n");
}

TEST(SpillTest, NoTemporaryDirectoryMeansNoRecord) {
  const char* old = std::getenv("TMPDIR");
  std::string saved = old ? old : "";
  ::setenv("TMPDIR", "/nonexistent/thinmeta", 1);
  Log inner;
  th::SpillSink spill(inner);
  ASSERT_TRUE(stream(spill, 10).has_value());  // the stream itself still flows
  EXPECT_FALSE(spill.complete());
  // ... but a second pass must not read the source again: the caller refuses, saying why.
  ASSERT_TRUE(spill.system_error());
  EXPECT_NE(spill.system_error()->find("'/nonexistent/thinmeta'"), std::string::npos);
  auto r = th::SpillSink::check(&spill);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("set TMPDIR"), std::string::npos);
  EXPECT_TRUE(th::SpillSink::check(nullptr).has_value());
  if (old)
    ::setenv("TMPDIR", saved.c_str(), 1);
  else
    ::unsetenv("TMPDIR");
}

}  // namespace
