// SPDX-License-Identifier: GPL-3.0-or-later
// Superblock codec and validation against the worked example of FORMAT.md Appendix A.
#include <gtest/gtest.h>

#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

using namespace thinmeta;
using namespace thinmeta::thin;

namespace {

Superblock appendix_a() {
  Superblock sb;
  sb.time = 1;
  sb.trans_id = 5;
  sb.data_sm = {1000, 3, 4, 5};
  sb.metadata_sm = {1024, 11, 1, 2};
  sb.data_mapping_root = 7;
  sb.device_details_root = 6;
  sb.data_block_size = 128;
  sb.metadata_nr_blocks = 1024;
  return sb;
}

}  // namespace

TEST(Superblock, EncodesTheWorkedExampleByteForByte) {
  pdata::AlignedBuffer b(1);
  encode_superblock(appendix_a(), b.data());
  EXPECT_EQ(pdata::load_le32(b.data()), 0xE3E2EB7Eu);  // FORMAT.md §3 test vector
  const std::uint8_t magic[] = {0xba, 0x52, 0x9c, 0x01, 0, 0, 0, 0};
  EXPECT_EQ(std::memcmp(b.data() + 32, magic, 8), 0);
  EXPECT_EQ(pdata::load_le64(b.data() + 0x140), 7u);
  EXPECT_EQ(pdata::load_le32(b.data() + 0x150), 128u);
}

TEST(Superblock, DecodeInvertsEncode) {
  pdata::AlignedBuffer b(1);
  Superblock sb = appendix_a();
  sb.flags = 1;
  sb.held_root = 132;
  encode_superblock(sb, b.data());
  auto r = validate_superblock(b.data(), 0);
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(r->held_root, 132u);
  EXPECT_TRUE(r->needs_check());
  EXPECT_EQ(r->data_sm.nr_blocks, 1000u);
  EXPECT_EQ(r->metadata_sm.bitmap_root, 1u);
  EXPECT_EQ(r->device_details_root, 6u);
}

TEST(Superblock, DistinctMessagesForEachProblem) {
  pdata::AlignedBuffer b(1);
  auto expect_error = [&](Superblock sb, BlockAddr where, const char* text) {
    encode_superblock(sb, b.data());
    auto r = validate_superblock(b.data(), where);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().what.find(text), std::string::npos) << r.error().what;
  };
  Superblock sb = appendix_a();
  sb.magic = 1;
  expect_error(sb, 0, "bad magic");
  sb = appendix_a();
  expect_error(sb, 5, "bad block number");
  sb.version = 3;
  expect_error(sb, 0, "unsupported metadata version");
  sb = appendix_a();
  sb.incompat_flags = 1;
  expect_error(sb, 0, "incompatible features");
  encode_superblock(appendix_a(), b.data());
  b.data()[100] ^= 1;
  auto r = validate_superblock(b.data(), 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().what, "bad checksum in superblock");
  std::memset(b.data(), 0, 4096);
  r = validate_superblock(b.data(), 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("all zeroes"), std::string::npos);
}

TEST(Superblock, VersionOneIsAccepted) {
  pdata::AlignedBuffer b(1);
  Superblock sb = appendix_a();
  sb.version = 1;
  encode_superblock(sb, b.data());
  EXPECT_TRUE(validate_superblock(b.data(), 0).has_value());
}

TEST(Metadata, SnapshotSelection) {
  auto io = pdata::make_memory_engine(1024);
  pdata::AlignedBuffer b(1);
  Superblock live = appendix_a();
  live.held_root = 132;
  encode_superblock(live, b.data());
  ASSERT_TRUE(io->write(0, b.data()).has_value());
  Superblock held = appendix_a();
  held.blocknr = 132;
  held.data_sm = {};
  held.metadata_sm = {};
  held.data_mapping_root = 128;
  held.trans_id = 4;
  encode_superblock(held, b.data());
  ASSERT_TRUE(io->write(132, b.data()).has_value());

  auto* raw = io.get();
  auto md = Metadata::open(std::move(io), RootSelector{true, std::nullopt});
  ASSERT_TRUE(md.has_value()) << md.error().what;
  EXPECT_TRUE(md->from_snapshot());
  EXPECT_EQ(md->mapping_root(), 128u);
  EXPECT_EQ(md->sb().trans_id, 4u);
  EXPECT_EQ(md->nr_data_blocks(), 0u);  // a held copy has no space maps
  (void)raw;
}

TEST(Metadata, SnapshotErrors) {
  auto make = [](BlockAddr held_root) {
    auto io = pdata::make_memory_engine(1024);
    pdata::AlignedBuffer b(1);
    Superblock live = appendix_a();
    live.held_root = held_root;
    encode_superblock(live, b.data());
    EXPECT_TRUE(io->write(0, b.data()).has_value());
    return io;
  };
  auto none = Metadata::open(make(0), RootSelector{true, std::nullopt});
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().what, "no current metadata snap");
  auto mismatch = Metadata::open(make(132), RootSelector{true, 7});
  ASSERT_FALSE(mismatch.has_value());
  EXPECT_EQ(mismatch.error().what, "metadata snapshot does not match that in superblock");
  auto garbage = Metadata::open(make(132), RootSelector{true, 132});
  ASSERT_FALSE(garbage.has_value());
  EXPECT_NE(garbage.error().what.find("metadata snapshot superblock"), std::string::npos);
  auto live = Metadata::open(make(132), RootSelector{});
  EXPECT_TRUE(live.has_value());
}

TEST(Metadata, ShorterThanTheSuperblockSays) {
  auto io = pdata::make_memory_engine(100);
  pdata::AlignedBuffer b(1);
  encode_superblock(appendix_a(), b.data());  // claims 1024 blocks
  ASSERT_TRUE(io->write(0, b.data()).has_value());
  auto md = Metadata::open(std::move(io), RootSelector{});
  ASSERT_FALSE(md.has_value());
  EXPECT_NE(md.error().what.find("shorter than the superblock says"), std::string::npos);
}
