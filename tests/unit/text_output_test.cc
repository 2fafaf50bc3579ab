// SPDX-License-Identifier: GPL-3.0-or-later
// The XML writer's mapping lines (formatted into a reserved line) byte for byte, through a
// real file (the number formatter itself: decimal_test.cc).
#include <gtest/gtest.h>

#include <stdio.h>
#include <unistd.h>

#include <cstring>
#include <cstdint>
#include <limits>
#include <string>

#include "thin/text_output.h"
#include "xml/metadata_writer.h"

namespace {

using namespace thinmeta;

// Writes through a TextOutput into a temporary file and returns what the file holds.
template <typename Fn>
std::string through_file(Fn fn, std::size_t buffer) {
  FILE* f = tmpfile();
  EXPECT_NE(f, nullptr);
  {
    thin::TextOutput out(fileno(f), buffer);
    fn(out);
    EXPECT_TRUE(out.flush());
  }
  std::string s;
  char buf[4096];
  rewind(f);
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  fclose(f);
  return s;
}

TEST(MetadataWriter, MappingLinesByteForByte) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  auto lines = [&](thin::TextOutput& out) {
    xml::MetadataWriter w(out);
    ASSERT_TRUE(w.map({0, 0, 1, 0}));
    ASSERT_TRUE(w.map({7, 123456789, 1, 3}));
    ASSERT_TRUE(w.map({10, 20, 5, 4294967295u}));
    ASSERT_TRUE(w.map({max, max, max, 4294967295u}));
    ASSERT_TRUE(w.map({max, 0, 1, 0}));
  };
  const std::string want =
      "    <single_mapping origin_block=\"0\" data_block=\"0\" time=\"0\"/>\n"
      "    <single_mapping origin_block=\"7\" data_block=\"123456789\" time=\"3\"/>\n"
      "    <range_mapping origin_begin=\"10\" data_begin=\"20\" length=\"5\" "
      "time=\"4294967295\"/>\n"
      "    <range_mapping origin_begin=\"18446744073709551615\" "
      "data_begin=\"18446744073709551615\" length=\"18446744073709551615\" "
      "time=\"4294967295\"/>\n"
      "    <single_mapping origin_block=\"18446744073709551615\" data_block=\"0\" "
      "time=\"0\"/>\n";
  EXPECT_EQ(through_file(lines, 1 << 20), want);
  // The smallest buffer: lines that do not fit drain it first, none is cut.
  EXPECT_EQ(through_file(
                [&](thin::TextOutput& out) {
                  for (int i = 0; i < 100; ++i) lines(out);
                },
                1),
            [&] {
              std::string s;
              for (int i = 0; i < 100; ++i) s += want;
              return s;
            }());
}

TEST(MetadataWriter, SuperblockAndDeviceAttributes) {
  std::string got = through_file(
      [](thin::TextOutput& out) {
        xml::MetadataWriter w(out);
        thin::SuperblockInfo sb;
        sb.uuid = "a\"<b";
        sb.time = 4294967295u;
        sb.trans_id = std::numeric_limits<std::uint64_t>::max();
        sb.data_block_size = 128;
        sb.nr_data_blocks = 0;
        sb.metadata_snap = 5;
        ASSERT_TRUE(w.begin_superblock(sb));
        thin::DeviceInfo d;
        d.dev_id = 16777215;
        d.details.mapped_blocks = 10;
        ASSERT_TRUE(w.begin_device(d));
        ASSERT_TRUE(w.end_device());
        ASSERT_TRUE(w.end_superblock());
      },
      1 << 20);
  EXPECT_EQ(got,
            "<superblock uuid=\"a&quot;&lt;b\" time=\"4294967295\" "
            "transaction=\"18446744073709551615\" flags=\"0\" version=\"2\" "
            "data_block_size=\"128\" nr_data_blocks=\"0\" metadata_snap=\"5\">\n"
            "  <device dev_id=\"16777215\" mapped_blocks=\"10\" transaction=\"0\" "
            "creation_time=\"0\" snap_time=\"0\">\n"
            "  </device>\n"
            "</superblock>\n");
}

}  // namespace
