// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>

#include <map>

#include "persistent-data/btree/btree_node.h"
#include "persistent-data/checksum.h"
#include "persistent-data/space_map/space_map_format.h"
#include "persistent-data/space_map/space_map_writer.h"
#include "thin/dump.h"
#include "thin/restore/restorer.h"
#include "thin/text_output.h"
#include "xml/metadata_reader.h"

namespace pd = thinmeta::pdata;
namespace th = thinmeta::thin;
using thinmeta::Result;

namespace {

// Decodes the counts a space map root says (metadata: index block; data: index btree leaf).
std::map<std::uint64_t, std::uint32_t> sm_counts(pd::IoEngine& io, const pd::SmRoot& root,
                                                 bool metadata) {
  pd::AlignedBuffer b(1);
  std::vector<pd::IndexEntry> index;
  EXPECT_TRUE(io.read(root.bitmap_root, b.data()).has_value());
  for (std::uint64_t i = 0; i < pd::nr_bitmaps(root.nr_blocks); ++i) {
    if (metadata) {
      index.push_back(pd::decode_index_entry(b.data() + 16 + 16 * i));
    } else {
      pd::NodeView n(b.data());
      index.push_back(pd::decode_index_entry(n.value(static_cast<std::uint32_t>(i))));
    }
  }
  std::map<std::uint64_t, std::uint32_t> out;
  for (std::uint64_t i = 0; i < index.size(); ++i) {
    EXPECT_TRUE(io.read(index[i].blocknr, b.data()).has_value());
    EXPECT_FALSE(pd::validate_block(b.data(), index[i].blocknr, pd::BlockKind::kBitmap));
    for (std::uint64_t e = 0; e < pd::kEntriesPerBitmap; ++e)
      if (unsigned c = pd::bitmap_entry(b.data(), e)) out[i * pd::kEntriesPerBitmap + e] = c;
  }
  EXPECT_TRUE(io.read(root.ref_count_root, b.data()).has_value());
  pd::NodeView n(b.data());
  EXPECT_TRUE(n.is_leaf());  // small trees in these tests
  for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
    EXPECT_EQ(out[n.key(i)], 3u);
    out[n.key(i)] = pd::load_le32(n.value(i));
  }
  return out;
}

std::string restore_and_dump(const std::string& xml, pd::IoEngine& io, th::Superblock* sb_out) {
  th::Restorer r;
  auto parsed = thinmeta::xml::read_metadata(xml, r);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().what;
  auto stats = r.commit(io);
  EXPECT_TRUE(stats.has_value()) << (stats ? "" : stats.error().what);
  auto sb = th::read_superblock(io, 0);
  EXPECT_TRUE(sb.has_value());
  if (sb_out) *sb_out = *sb;
  return "";
}

const char* kSb =
    "<superblock uuid=\"\" time=\"1\" transaction=\"2\" flags=\"0\" version=\"2\" "
    "data_block_size=\"128\" nr_data_blocks=\"40000\">\n";

}  // namespace

TEST(Restorer, DataCountsComeFromTheMappings) {
  // Block 7 mapped by an origin and three snapshots: count 4, in the overflow tree.
  std::string xml = kSb;
  for (int dev = 1; dev <= 4; ++dev) {
    xml += "<device dev_id=\"" + std::to_string(dev) +
           "\" mapped_blocks=\"9\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"
           "<single_mapping origin_block=\"0\" data_block=\"7\" time=\"0\"/>\n";
    if (dev <= 2) xml += "<single_mapping origin_block=\"1\" data_block=\"8\" time=\"0\"/>\n";
    xml += "<range_mapping origin_begin=\"5\" data_begin=\"" + std::to_string(20000 + dev * 100) +
           "\" length=\"50\" time=\"0\"/>\n</device>\n";
  }
  xml += "</superblock>\n";
  auto io = pd::make_memory_engine(1000);
  th::Superblock sb;
  restore_and_dump(xml, *io, &sb);
  auto data = sm_counts(*io, sb.data_sm, false);
  EXPECT_EQ(data[7], 4u);
  EXPECT_EQ(data[8], 2u);
  EXPECT_EQ(data.size(), 2u + 200u);
  EXPECT_EQ(data.at(20149), 1u);
  EXPECT_EQ(sb.data_sm.nr_allocated, 202u);
  EXPECT_EQ(sb.data_sm.nr_blocks, 40000u);

  // Metadata: every block below the end of what was written counts 1, nothing above.
  auto meta = sm_counts(*io, sb.metadata_sm, true);
  EXPECT_EQ(sb.metadata_sm.nr_allocated, meta.size());
  for (std::uint64_t b = 0; b < meta.size(); ++b) EXPECT_EQ(meta[b], 1u) << b;
  EXPECT_EQ(meta.rbegin()->first, meta.size() - 1);
  EXPECT_EQ(sb.metadata_nr_blocks, 1000u);
  EXPECT_EQ(sb.version, 2u);
  EXPECT_EQ(sb.held_root, 0u);
}

TEST(Restorer, SharedDefLeavesAreCountedOncePerLeaf) {
  std::string xml = kSb;
  xml += "<def name=\"a\">\n<range_mapping origin_begin=\"0\" data_begin=\"100\" length=\"200\" "
         "time=\"0\"/>\n</def>\n";
  for (int dev = 1; dev <= 3; ++dev)
    xml += "<device dev_id=\"" + std::to_string(dev) +
           "\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"
           "<ref name=\"a\"/>\n</device>\n";
  xml += "</superblock>\n";
  auto io = pd::make_memory_engine(1000);
  th::Superblock sb;
  restore_and_dump(xml, *io, &sb);
  auto data = sm_counts(*io, sb.data_sm, false);
  EXPECT_EQ(data.size(), 200u);
  for (auto& [b, c] : data) EXPECT_EQ(c, 1u) << b;  // one leaf, three devices
  auto meta = sm_counts(*io, sb.metadata_sm, true);
  EXPECT_EQ(meta[1], 3u);  // the shared leaf is block 1: three parents, in the overflow tree
}

TEST(Restorer, FailureAfterWritingStartedLeavesNoValidSuperblock) {
  // An engine that fails after a few writes: block 0 must not hold a valid superblock.
  struct Failing : pd::IoEngine {
    std::unique_ptr<pd::IoEngine> inner = pd::make_memory_engine(1000);
    int writes = 0;
    pd::BlockAddr nr_blocks() const override { return 1000; }
    void read_many(std::span<const pd::BlockAddr> a, std::uint8_t* b, std::span<int> e) override {
      inner->read_many(a, b, e);
    }
    Result<> write_many(std::span<const pd::BlockAddr> a, const std::uint8_t* b) override {
      if (++writes > 2) return thinmeta::fail(thinmeta::Errc::kIo, "injected write error");
      return inner->write_many(a, b);
    }
    Result<> flush() override { return {}; }
  } io;
  // A valid superblock is there first.
  th::Superblock old;
  pd::AlignedBuffer blk(1);
  th::encode_superblock(old, blk.data());
  ASSERT_TRUE(io.inner->write(0, blk.data()).has_value());
  th::Restorer r;
  std::string xml = std::string(kSb) + "</superblock>\n";
  ASSERT_TRUE(thinmeta::xml::read_metadata(xml, r).has_value());
  auto stats = r.commit(io);
  ASSERT_FALSE(stats.has_value());
  EXPECT_FALSE(th::read_superblock(*io.inner, 0).has_value());
}

TEST(Restorer, RejectsWithPositions) {
  th::Restorer r;
  std::string xml = std::string(kSb) +
                    "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" "
                    "creation_time=\"0\" snap_time=\"0\">\n"
                    "  <single_mapping origin_block=\"3\" data_block=\"1\" time=\"0\"/>\n"
                    "  <single_mapping origin_block=\"3\" data_block=\"2\" time=\"0\"/>\n";
  auto res = thinmeta::xml::read_metadata(xml, r);
  ASSERT_FALSE(res.has_value());
  EXPECT_NE(res.error().what.find("line 4, column 3"), std::string::npos) << res.error().what;
  EXPECT_NE(res.error().what.find("virtual block 3"), std::string::npos);
}
