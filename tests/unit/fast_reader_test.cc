// SPDX-License-Identifier: GPL-3.0-or-later
// The fast XML reader either declines or delivers exactly the events the expat reader does:
// on thin_dump's own output it must not decline; on anything odd (hand-made variants, every
// truncation, random byte changes) it may decline but never accept what expat rejects or
// deliver something different.
#include <gtest/gtest.h>

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "xml/fast_reader.h"
#include "xml/metadata_reader.h"

namespace {

using namespace thinmeta;

// Logs every event; fails on request (to check that a sink error makes the reader decline).
class LogSink final : public thin::MetadataSink {
 public:
  std::string log;
  int fail_at = -1;
  int events = 0;

  Result<> begin_superblock(const thin::SuperblockInfo& sb) override {
    log += "sb " + sb.uuid + " " + std::to_string(sb.time) + " " + std::to_string(sb.trans_id) +
           " " + std::to_string(sb.flags) + " " + std::to_string(sb.version) + " " +
           std::to_string(sb.data_block_size) + " " + std::to_string(sb.nr_data_blocks) + " " +
           (sb.metadata_snap ? std::to_string(*sb.metadata_snap) : "-") + "\n";
    return next();
  }
  Result<> end_superblock() override { return add("/sb\n"); }
  Result<> begin_device(const thin::DeviceInfo& d) override {
    return add("dev " + std::to_string(d.dev_id) + " " +
               std::to_string(d.details.mapped_blocks) + " " +
               std::to_string(d.details.transaction_id) + " " +
               std::to_string(d.details.creation_time) + " " +
               std::to_string(d.details.snapshotted_time) + "\n");
  }
  Result<> end_device() override { return add("/dev\n"); }
  Result<> map(const thin::MappingRun& r) override {
    return add("map " + std::to_string(r.thin_begin) + " " + std::to_string(r.data_begin) + " " +
               std::to_string(r.len) + " " + std::to_string(r.time) + "\n");
  }
  Result<> begin_def(std::string_view n) override { return add("def " + std::string(n) + "\n"); }
  Result<> end_def() override { return add("/def\n"); }
  Result<> ref(std::string_view n) override { return add("ref " + std::string(n) + "\n"); }

 private:
  Result<> add(const std::string& s) {
    log += s;
    return next();
  }
  Result<> next() {
    if (events++ == fail_at) return fail(Errc::kInvalidArgument, "sink says no");
    return {};
  }
};

const char* const kDump =
    "<superblock uuid=\"\" time=\"3\" transaction=\"4\" flags=\"0\" version=\"2\" "
    "data_block_size=\"128\" nr_data_blocks=\"5619148\">\n"
    "  <def name=\"7\">\n"
    "    <range_mapping origin_begin=\"0\" data_begin=\"9\" length=\"9\" time=\"0\"/>\n"
    "  </def>\n"
    "  <device dev_id=\"1\" mapped_blocks=\"4200000\" transaction=\"0\" creation_time=\"0\" "
    "snap_time=\"3\">\n"
    "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"9\" time=\"0\"/>\n"
    "    <single_mapping origin_block=\"14\" data_block=\"18446744073709551615\" "
    "time=\"4294967295\"/>\n"
    "    <ref name=\"7\"/>\n"
    "  </device>\n"
    "  <device dev_id=\"2\" mapped_blocks=\"0\" transaction=\"1\" creation_time=\"2\" "
    "snap_time=\"3\">\n"
    "  </device>\n"
    "</superblock>\n";

// (fast accepted, fast log, expat accepted, expat log)
struct Both {
  bool fast_ok;
  std::string fast_log;
  bool expat_ok;
  std::string expat_log;
};

Both read_both(const std::string& text, int fail_at = -1) {
  LogSink f, e;
  f.fail_at = e.fail_at = fail_at;
  auto fr = xml::read_metadata_fast(text, f);
  auto er = xml::read_metadata(text, e);
  return {fr && *fr, f.log, er.has_value(), e.log};
}

void expect_consistent(const std::string& text) {
  Both b = read_both(text);
  if (b.fast_ok) {
    EXPECT_TRUE(b.expat_ok) << "fast accepted what expat rejects:\n" << text;
    EXPECT_EQ(b.fast_log, b.expat_log) << text;
  }
}

TEST(FastReader, UnknownAttributesAreDeclinedAndExpatNamesThem) {
  // A typo must never be dropped silently (issue 13 item 11): the fast reader declines, expat
  // names the attribute, the tag and the line.
  std::string text = kDump;
  auto at = text.find(" length=");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, " lenght=");
  LogSink f, e;
  auto fr = xml::read_metadata_fast(text, f);
  EXPECT_TRUE(!fr || !*fr);
  auto er = xml::read_metadata(text, e);
  ASSERT_FALSE(er.has_value());
  EXPECT_NE(er.error().what.find("unknown attribute 'lenght' in tag 'range_mapping'"),
            std::string::npos)
      << er.error().what;
  std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + at, '\n'));
  EXPECT_NE(er.error().what.find("line " + std::to_string(line) + ","), std::string::npos)
      << er.error().what;
}

TEST(FastReader, TakesThinDumpOutputAsExpatDoes) {
  Both b = read_both(kDump);
  EXPECT_TRUE(b.fast_ok);
  EXPECT_TRUE(b.expat_ok);
  EXPECT_EQ(b.fast_log, b.expat_log);
}

TEST(FastReader, TakesHarmlessVariants) {
  const char* ok[] = {
      "<superblock time='1' transaction='1' data_block_size='128' nr_data_blocks='1'/>",
      "\n\n<superblock   time = \"1\"\ttransaction=\"1\" data_block_size=\"128\"\r\n"
      " nr_data_blocks=\"1\" metadata_snap=\"7\" ></superblock >\n\n",
      "<superblock time=\"1\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"1\">"
      "<device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" "
      "snap_time=\"0\"/><device snap_time=\"0\" creation_time=\"0\" transaction=\"0\" "
      "mapped_blocks=\"1\" dev_id=\"2\"><range_mapping length=\"1\" time=\"0\" data_begin=\"0\" "
      "origin_begin=\"5\"></range_mapping></device></superblock>",
  };
  for (const char* t : ok) expect_consistent(t);
  EXPECT_TRUE(read_both(ok[1]).fast_ok);
  EXPECT_TRUE(read_both(ok[2]).fast_ok);
}

TEST(FastReader, DeclinesWhatItDoesNotKnow) {
  const std::string sb = "<superblock time=\"1\" transaction=\"1\" data_block_size=\"128\" "
                         "nr_data_blocks=\"1\"";
  const std::string odd[] = {
      "<?xml version=\"1.0\"?>" + sb + "/>",
      "<!-- c -->" + sb + "/>",
      sb + " uuid=\"a&amp;b\"/>",
      sb + " uuid=\"\xc3\xa9\"/>",
      sb + " extra=\"1\"/>",
      sb + " time=\"2\"/>",
      sb + ">text</superblock>",
      sb + "></device>",
      sb + "/><superblock/>",
      sb + ">",
      "<superblock time=\"1\" transaction=\"1\" data_block_size=\"128\"/>",
      "<superblock time=\"4294967296\" transaction=\"1\" data_block_size=\"128\" "
      "nr_data_blocks=\"1\"/>",
      "<superblock time=\"+1\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"1\"/>",
      "<superblock time=\"\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"1\"/>",
      "<device/>",
      "",
  };
  for (const std::string& t : odd) {
    EXPECT_FALSE(read_both(t).fast_ok) << t;
    expect_consistent(t);
  }
}

TEST(FastReader, DeclinesWhenTheSinkFails) {
  for (int i = 0; i < 10; ++i) {
    Both b = read_both(kDump, i);
    EXPECT_FALSE(b.fast_ok) << i;
    EXPECT_FALSE(b.expat_ok) << i;
  }
}

TEST(FastReader, EveryTruncationIsDeclinedOrConsistent) {
  const std::string doc = kDump;
  for (std::size_t n = 0; n < doc.size(); ++n) {
    Both b = read_both(doc.substr(0, n));
    if (doc.find_first_not_of(" \n", n) != std::string::npos) {
      EXPECT_FALSE(b.fast_ok) << n;
    }
    expect_consistent(doc.substr(0, n));
  }
}

TEST(FastReader, RandomByteChangesAreDeclinedOrConsistent) {
  std::mt19937 rng(42);
  const std::string doc = kDump;
  const char alphabet[] = "<>/=\"' \n0123456789abcdefghijklmnopqrstuvwxyz_&;!?-.:\x01\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string t = doc;
    int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      std::size_t at = rng() % t.size();
      char ch = alphabet[rng() % (sizeof(alphabet) - 1)];
      switch (rng() % 3) {
        case 0: t[at] = ch; break;
        case 1: t.insert(t.begin() + static_cast<std::ptrdiff_t>(at), ch); break;
        default: t.erase(at, 1); break;
      }
    }
    expect_consistent(t);
  }
}

// The mapping lines thin_dump writes are read eight digits at a time: every number length
// (1-21 digits, leading zeros, at and past 2^64 - 1 and 2^32 - 1) in every field of both line
// kinds, and each odd byte after, inside or before the digits, must give what expat gives or
// be declined; what expat takes must be taken. Lines are followed by
// enough text for the literal line match (it wants a whole longest line ahead).
TEST(FastReader, NumbersOfEveryLengthInEveryMappingField) {
  const std::string head =
      "<superblock time=\"1\" transaction=\"1\" data_block_size=\"128\" nr_data_blocks=\"1\">\n"
      "  <device dev_id=\"1\" mapped_blocks=\"0\" transaction=\"0\" creation_time=\"0\" "
      "snap_time=\"0\">\n";
  const std::string tail = std::string(200, '\n') + "  </device>\n</superblock>\n";
  auto range = [](const std::string* f) {
    return "    <range_mapping origin_begin=\"" + f[0] + "\" data_begin=\"" + f[1] +
           "\" length=\"" + f[2] + "\" time=\"" + f[3] + "\"/>\n";
  };
  auto single = [](const std::string* f) {
    return "    <single_mapping origin_block=\"" + f[0] + "\" data_block=\"" + f[1] +
           "\" time=\"" + f[3] + "\"/>\n";
  };
  std::mt19937_64 rng(19);
  std::vector<std::string> numbers = {"0", "00", "007", "4294967295", "4294967296",
                                      "18446744073709551615", "18446744073709551616",
                                      "99999999999999999999", "018446744073709551615",
                                      "00000000000000000001", "000000000000000000001"};
  for (int len = 1; len <= 21; ++len)
    for (int k = 0; k < 3; ++k) {
      std::string n(1, static_cast<char>('1' + rng() % 9));
      while (static_cast<int>(n.size()) < len) n += static_cast<char>('0' + rng() % 10);
      numbers.push_back(n);
    }
  const std::string odd[] = {"", "a", "/", ":", " ", "-", "\xff", "\x80", "\"", "'"};
  for (int field = 0; field < 4; ++field)
    for (auto line : {+range, +single}) {
      if (field == 2 && line == +single) continue;
      for (const std::string& n : numbers) {
        std::string f[4] = {"5", "6", "7", "0"};
        f[field] = n;
        std::string doc = head + line(f) + line(f) + tail;
        Both b = read_both(doc);
        if (b.expat_ok) {
          EXPECT_TRUE(b.fast_ok) << doc;
        }
        expect_consistent(doc);
        for (const std::string& o : odd) {
          f[field] = n.substr(0, n.size() - 1) + o + n.substr(n.size() - 1);
          expect_consistent(head + line(f) + line(f) + tail);
          f[field] = n + o;
          expect_consistent(head + line(f) + line(f) + tail);
          f[field] = o + n;
          expect_consistent(head + line(f) + line(f) + tail);
        }
      }
    }
}

// A temporary file holding `text`, rewound; closed by the caller.
FILE* temp_file(const std::string& text) {
  FILE* f = std::tmpfile();
  if (!f) return nullptr;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fflush(f);
  ::lseek(fileno(f), 0, SEEK_SET);
  return f;
}

TEST(FastReader, ReadsAFileAcrossChunkBoundaries) {
  // Over 3 MiB of mappings with varying line lengths, so tags straddle the 1 MiB chunks.
  std::string doc =
      "<superblock uuid=\"u\" time=\"1\" transaction=\"1\" data_block_size=\"128\" "
      "nr_data_blocks=\"100000000\">\n  <device dev_id=\"1\" mapped_blocks=\"0\" "
      "transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n";
  for (std::uint64_t i = 0; doc.size() < (3u << 20) + 777; ++i)
    doc += "    <range_mapping origin_begin=\"" + std::to_string(i * 1000) + "\" data_begin=\"" +
           std::to_string(i * i % 99991) + "\" length=\"" + std::to_string(1 + i % 999) +
           "\" time=\"" + std::to_string(i % 7) + "\"/>\n";
  doc += "  </device>\n  <device dev_id=\"2\" mapped_blocks=\"0\" transaction=\"0\" "
         "creation_time=\"0\" snap_time=\"0\"/>\n</superblock>\n";
  LogSink expat;
  ASSERT_TRUE(xml::read_metadata(doc, expat).has_value());
  for (bool pipelined : {false, true}) {
    FILE* f = temp_file(doc);
    ASSERT_NE(f, nullptr);
    LogSink fast;
    auto r = pipelined ? xml::read_metadata_pipelined(fileno(f), fast)
                       : xml::read_metadata_fast(fileno(f), fast);
    std::fclose(f);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(*r) << pipelined;
    EXPECT_EQ(fast.log, expat.log) << pipelined;
  }
}

TEST(FastReader, PipelinedDeclinesAsTheFastReaderDoes) {
  std::string many = kDump;
  std::string line = "    <range_mapping origin_begin=\"100\" data_begin=\"9\" length=\"9\" time=\"0\"/>\n";
  std::size_t at = many.find("  </device>");
  for (int i = 0; i < 20000; ++i) many.insert(at, line);  // several hand-over chunks
  for (int fail_at : {-1, 0, 3, 5000, 19000}) {
    FILE* f = temp_file(many);
    ASSERT_NE(f, nullptr);
    LogSink a, b;
    a.fail_at = b.fail_at = fail_at;
    auto r = xml::read_metadata_pipelined(fileno(f), a);
    std::fclose(f);
    auto e = xml::read_metadata(many, b);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, fail_at < 0) << fail_at;
    EXPECT_EQ(e.has_value(), fail_at < 0) << fail_at;
    if (fail_at < 0) {
      EXPECT_EQ(a.log, b.log);
    }
  }
  FILE* f = temp_file(many.substr(0, many.size() - 20));  // truncated: declined
  ASSERT_NE(f, nullptr);
  LogSink c;
  auto r = xml::read_metadata_pipelined(fileno(f), c);
  std::fclose(f);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(*r);
}

}  // namespace
