// SPDX-License-Identifier: GPL-3.0-or-later
// The hand-rolled decimal formatting (write_u64) against std::to_chars, and the XML writer's
// mapping lines (formatted into a reserved line) byte for byte, through a real file.
#include <gtest/gtest.h>

#include <stdio.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "thin/text_output.h"
#include "xml/metadata_writer.h"

namespace {

using namespace thinmeta;

std::string reference(std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string formatted(std::uint64_t v) {
  char buf[32];
  std::memset(buf, 'x', sizeof buf);
  char* end = thin::write_u64(buf, v);
  EXPECT_EQ(end - buf, static_cast<long>(thin::decimal_digits(v))) << v;
  EXPECT_EQ(*end, 'x') << "wrote past the end for " << v;
  return std::string(buf, end);
}

TEST(WriteU64, EdgeCases) {
  EXPECT_EQ(formatted(0), "0");
  EXPECT_EQ(formatted(1), "1");
  EXPECT_EQ(formatted(9), "9");
  EXPECT_EQ(formatted(10), "10");
  EXPECT_EQ(formatted(99), "99");
  EXPECT_EQ(formatted(100), "100");
  EXPECT_EQ(formatted(4294967295u), "4294967295");
  EXPECT_EQ(formatted(4294967296u), "4294967296");
  EXPECT_EQ(formatted(9999999999999999999ull), "9999999999999999999");
  EXPECT_EQ(formatted(10000000000000000000ull), "10000000000000000000");
  EXPECT_EQ(formatted(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(thin::decimal_digits(0), 1u);
  EXPECT_EQ(thin::decimal_digits(std::numeric_limits<std::uint64_t>::max()), 20u);
}

TEST(WriteU64, EveryPowerOfTenAndTwoAndTheirNeighbours) {
  std::uint64_t p = 1;
  for (int i = 0; i < 20; ++i, p *= 10)
    for (std::uint64_t v : {p - 1, p, p + 1}) EXPECT_EQ(formatted(v), reference(v)) << v;
  for (int i = 0; i < 64; ++i) {
    std::uint64_t b = std::uint64_t{1} << i;
    for (std::uint64_t v : {b - 1, b, b + 1}) EXPECT_EQ(formatted(v), reference(v)) << v;
  }
}

TEST(WriteU64, RandomValuesOfEveryWidth) {
  std::mt19937_64 rng(18);
  for (int bits = 1; bits <= 64; ++bits)
    for (int k = 0; k < 200; ++k) {
      std::uint64_t v = rng() >> (64 - bits);
      EXPECT_EQ(formatted(v), reference(v)) << v;
    }
  for (std::uint64_t v = 0; v < 100000; ++v) ASSERT_EQ(formatted(v), reference(v)) << v;
}

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
