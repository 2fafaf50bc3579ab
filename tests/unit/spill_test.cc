// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/restore/spill.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "persistent-data/crc32c.h"
#include "thin/restore/spill_codec.h"

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

// Two long logs compared, naming the first line that differs (gtest's diff of strings this
// long would take gigabytes).
::testing::AssertionResult same(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  const std::size_t line = want.rfind('\n', i == 0 ? 0 : i - 1);
  const std::size_t from = line == std::string::npos ? 0 : line + 1;
  return ::testing::AssertionFailure()
         << "differs at byte " << i << ": got '" << got.substr(from, 80) << "', want '"
         << want.substr(from, 80) << "'";
}

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
  EXPECT_TRUE(same(first.text, direct.text));
  ASSERT_TRUE(spill.replay(second).has_value());
  EXPECT_TRUE(same(second.text, direct.text));
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

// A stream as data (the model): what the sink should see, event for event.
struct Event {
  char kind;  // 'D' begin device, 'd' end device, 'M' map
  th::DeviceInfo dev{};
  th::MappingRun run{};
};
using Stream = std::vector<Event>;

th::SuperblockInfo model_sb() {
  th::SuperblockInfo sb;
  sb.uuid = "u-2";
  sb.trans_id = 9;
  sb.nr_data_blocks = 12345;
  return sb;
}

Result<> send(th::MetadataSink& s, const Stream& events) {
  THINMETA_CHECK(s.begin_superblock(model_sb()));
  for (const Event& e : events) {
    if (e.kind == 'D') THINMETA_CHECK(s.begin_device(e.dev));
    if (e.kind == 'd') THINMETA_CHECK(s.end_device());
    if (e.kind == 'M') THINMETA_CHECK(s.map(e.run));
  }
  return s.end_superblock();
}

// Random devices (some empty) of random runs: mostly close together, as pools are, with data
// going backwards, values near 2^64, lengths around the one-byte limit and 0, time changes.
Stream random_stream(std::uint64_t seed, int nr_devs, int max_runs) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  constexpr std::uint32_t kMax32 = std::numeric_limits<std::uint32_t>::max();
  auto big = [&] { return pick(2) ? kMax - pick(100) : rng(); };
  Stream out;
  for (int d = 0; d < nr_devs; ++d) {
    Event dev{'D'};
    dev.dev = th::DeviceInfo{pick(3) ? pick(1000) : big(),
                             {pick(3) ? pick(1 << 20) : big(), pick(4) ? pick(100) : big(),
                              static_cast<std::uint32_t>(pick(3) ? pick(50) : kMax32 - pick(3)),
                              static_cast<std::uint32_t>(pick(3) ? pick(50) : kMax32)}};
    out.push_back(dev);
    std::uint64_t thin = 0, data = 0;
    std::uint32_t time = 0;
    const auto runs = pick(5) == 0 ? 0 : pick(static_cast<std::uint64_t>(max_runs));
    for (std::uint64_t i = 0; i < runs; ++i) {
      th::MappingRun r;
      switch (pick(8)) {
        case 0: r.thin_begin = big(); break;
        case 1: r.thin_begin = thin - pick(1000); break;  // backwards
        default: r.thin_begin = thin + pick(200);
      }
      switch (pick(8)) {
        case 0: r.data_begin = big(); break;
        case 1: r.data_begin = data - pick(1u << 30); break;
        case 2: r.data_begin = data + pick(1u << 30); break;
        case 3: r.data_begin = rng(); break;
        default: r.data_begin = data + pick(40) - 20;
      }
      switch (pick(10)) {
        case 0: r.len = 62 + pick(4); break;  // around the tag's limit
        case 1: r.len = big(); break;
        case 2: r.len = pick(4) ? 1000 + pick(1u << 20) : 0; break;
        case 3: r.len = 1; break;
        default: r.len = 1 + pick(40);
      }
      switch (pick(12)) {
        case 0: time = static_cast<std::uint32_t>(rng()); break;
        case 1: time = kMax32; break;
        case 2: time = 0; break;
        case 3: ++time; break;
        default: break;
      }
      r.time = time;
      thin = r.thin_begin + r.len;
      data = r.data_begin + r.len;
      out.push_back(Event{'M', {}, r});
    }
    out.push_back(Event{'d'});
  }
  return out;
}

// The record of a stream as SpillSink writes it, in memory, with frames cut at `frame_limit`
// bytes (smaller frames than SpillSink's, to cross many frame ends in a small test).
std::string encode(const Stream& events, std::size_t frame_limit = th::spill::kFrameBytes) {
  std::string out;
  std::vector<char> frame(frame_limit);
  char* end = frame.data() + th::spill::kHeaderBytes;
  auto room = [&] {
    if (static_cast<std::size_t>(frame.data() + frame_limit - end) < th::spill::kMaxRecordBytes) {
      th::spill::seal_frame(frame.data(), end);
      out.append(frame.data(), end);
      end = frame.data() + th::spill::kHeaderBytes;
    }
    return end;
  };
  th::spill::Encoder enc;
  end = th::spill::Encoder::superblock(room());
  for (const Event& e : events) {
    if (e.kind == 'D') end = enc.device(room(), e.dev);
    if (e.kind == 'd') end = th::spill::Encoder::end_device(room());
    if (e.kind == 'M') end = enc.map(room(), e.run);
  }
  end = th::spill::Encoder::end_superblock(room());
  th::spill::seal_frame(frame.data(), end);
  out.append(frame.data(), end);
  return out;
}

Result<> decode(const std::string& record, th::MetadataSink& out) {
  return th::spill::replay(
      [&](char* buf, std::size_t n, std::uint64_t off) -> Result<std::size_t> {
        if (off >= record.size()) return 0;
        n = std::min<std::size_t>(n, record.size() - off);
        std::memcpy(buf, record.data() + off, n);
        return n;
      },
      record.size(), model_sb(), out);
}

std::string direct_log(const Stream& events) {
  Log log;
  EXPECT_TRUE(send(log, events).has_value());
  return log.text;
}

// A failed replay sent a prefix of the stream, never its end: nothing wrong was replayed.
void expect_refused(const std::string& record, const std::string& whole, const std::string& why) {
  Log log;
  auto r = decode(record, log);
  ASSERT_FALSE(r.has_value()) << why;
  EXPECT_EQ(r.error().what.rfind("internal error: the temporary record of the input is damaged", 0),
            0u)
      << r.error().what;
  EXPECT_EQ(whole.compare(0, log.text.size(), log.text), 0) << why;
  EXPECT_EQ(log.text.find("/sb"), std::string::npos) << why;
}

TEST(SpillCodecTest, RandomStreamsDecodeToTheModel) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    Stream s = random_stream(seed, 1 + static_cast<int>(seed % 7), 300);
    const std::string want = direct_log(s);
    for (std::size_t limit : {std::size_t{80}, std::size_t{1000}, th::spill::kFrameBytes}) {
      Log got;
      ASSERT_TRUE(decode(encode(s, limit), got).has_value()) << seed << " " << limit;
      ASSERT_TRUE(same(got.text, want)) << seed << " " << limit;
    }
  }
}

TEST(SpillCodecTest, RandomStreamsThroughTheFile) {
  // Several 1 MiB frames of random runs, and many small devices.
  Stream s = random_stream(77, 150, 4000);
  const std::string want = direct_log(s);
  Log first, second;
  th::SpillSink spill(first);
  ASSERT_TRUE(send(spill, s).has_value());
  ASSERT_TRUE(spill.complete());
  EXPECT_TRUE(same(first.text, want));
  ASSERT_TRUE(spill.replay(second).has_value());
  EXPECT_TRUE(same(second.text, want));
  EXPECT_GT(encode(s).size(), 2 * th::spill::kFrameBytes);
}

std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (!out.empty()) out += ' ';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

TEST(SpillCodecTest, TheBytesOfAKnownStream) {
  // Pins the format: deltas from the previous run's ends, zigzag data, lengths in the tag up
  // to 63, the time only when it changes, state reset at a device.
  Stream s{Event{'D', th::DeviceInfo{1, {5, 0, 0, 3}}},
           Event{'M', {}, th::MappingRun{0, 0, 9, 0}},
           Event{'M', {}, th::MappingRun{14, 9, 17, 0}},
           Event{'M', {}, th::MappingRun{10, 0, 1, 5}},   // both backwards, a new time
           Event{'M', {}, th::MappingRun{11, 1, 100, 5}},  // a long run
           Event{'d'},
           Event{'D', th::DeviceInfo{300, {0, 2, 1, 1}}},
           Event{'M', {}, th::MappingRun{3, 2, 1, 0}},
           Event{'d'}};
  const std::string rec = encode(s);
  ASSERT_GT(rec.size(), th::spill::kHeaderBytes);
  const std::string payload = rec.substr(th::spill::kHeaderBytes);
  EXPECT_EQ(hex(payload),
            "53 44 01 05 00 00 03 88 00 00 90 05 00 c0 eb ff ff ff ff ff ff ff ff 01 33 05 "
            "bf 00 00 24 64 44 ac 02 00 02 01 01 80 03 04 64 73");
  EXPECT_EQ(hex(rec.substr(0, 4)), "2b 00 00 00");
  const std::uint32_t crc = thinmeta::pdata::crc32c(payload.data(), payload.size());
  EXPECT_EQ(rec.compare(4, 4, std::string(reinterpret_cast<const char*>(&crc), 4)), 0);
}

TEST(SpillCodecTest, TruncatedOrGarbledRecordsAreRefused) {
  Stream s = random_stream(5, 4, 60);
  const std::string whole = direct_log(s);
  const std::string rec = encode(s, 120);
  ASSERT_GT(rec.size(), 600u);
  for (std::size_t n = 0; n < rec.size(); ++n)
    expect_refused(rec.substr(0, n), whole, "truncated to " + std::to_string(n));
  for (std::size_t i = 0; i < rec.size(); ++i)
    for (unsigned char bit : {0x01, 0x80}) {
      std::string bad = rec;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      expect_refused(bad, whole, "byte " + std::to_string(i) + " ^ " + std::to_string(bit));
    }
  expect_refused(rec + rec.substr(0, 9), whole, "a frame after the end");
  expect_refused(rec + "x", whole, "a byte after the end");
}

// One frame of the given payload, its checksum right: the records themselves are refused.
std::string frame_of(const std::string& payload) {
  std::string f(th::spill::kHeaderBytes, '\0');
  f += payload;
  th::spill::seal_frame(f.data(), f.data() + f.size());
  return f;
}

TEST(SpillCodecTest, BadRecordsWithGoodChecksumsAreRefused) {
  const std::string dev = std::string("SD\x01\x02\x03\x04\x05", 7);
  const std::string head = "sb u-2 9 12345 -\ndev 1 2 5\n", whole = head + "/dev\n";
  const std::string max10 = std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
  auto refused = [&](const std::string& payload, const char* why) {
    expect_refused(frame_of(payload), whole, why);
  };
  // The good stream first: it must pass, or the cases below prove nothing.
  Log good;
  ASSERT_TRUE(decode(frame_of(dev + std::string("\x80\x00\x00", 3) + "ds"), good).has_value());
  EXPECT_EQ(good.text, head + "map 0 0 1 0\n/dev\n/sb\n");
  Log huge;
  ASSERT_TRUE(decode(frame_of(dev + "\x80" + max10 + max10 + "ds"), huge).has_value());
  EXPECT_EQ(huge.text, head + "map 18446744073709551615 9223372036854775808 1 0\n/dev\n/sb\n");

  refused("", "an empty frame");
  refused(dev + "\x80", "a run cut at the frame's end");
  refused(dev + std::string("\x80\x00", 2), "a run without its data delta");
  refused(dev + std::string("\xbf\x00\x00", 3), "a long run without its length");
  refused(dev + std::string("\xc0\x00\x00", 3), "a new time missing");
  refused(dev + std::string("\x80\x80\x00\x00", 4) + "ds", "a redundant zero byte");
  const std::string data0_end("\x00" "ds", 3);
  refused(dev + "\x80" + std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10) + data0_end,
          "a varint wider than 64 bits");
  refused(dev + "\x80" + std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00", 10) + data0_end,
          "a redundant zero 10th byte");
  refused(dev + "\x80" + std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 11) + "ds",
          "a varint of 11 bytes");
  refused(dev + std::string("\xc0\x00\x00\x80\x80\x80\x80\x10", 8) + "ds", "a time of 2^32");
  refused(dev + std::string("\xc0\x00\x00\x00", 4) + "ds", "a new time that is the old one");
  refused(dev + std::string("\xbf\x00\x00", 3) + max10 + "ds", "a length past 2^64");
  refused(std::string("SD\x01\x02\x03\x80\x80\x80\x80\x10\x05", 11) + "ds",
          "a creation time of 2^32");
  refused(dev + "x", "an unknown record");
  refused(std::string("D\x01\x02\x03\x04\x05" "ds", 8), "no superblock first");
  refused(dev + "dSs", "a second superblock");
  refused(dev + "dsd", "a record after the end");
  refused(dev + "d", "no end");
  expect_refused(frame_of(dev + "d") + frame_of("s") + frame_of("s"), whole,
                 "a frame after the end");
  std::string too_long = frame_of(dev + "ds");
  too_long[0] = 5;  // shorter than the frame: its rest reads as a header
  expect_refused(too_long, whole, "a wrong frame length");
}

TEST(SpillCodecTest, EveryVarintLength) {
  // Deltas of 2^k - 1, 2^k and 2^k + 1 in both spaces, backwards too: every length 1..10.
  Stream s{Event{'D', th::DeviceInfo{7, {1, 2, 3, 4}}}};
  std::uint64_t thin = 0, data = 0;
  for (unsigned k = 0; k < 64; ++k)
    for (std::uint64_t d : {(1ull << k) - 1, 1ull << k, (1ull << k) + 1}) {
      for (bool back : {false, true}) {
        th::MappingRun r{thin + d, back ? data - d : data + d, d + 1,
                         static_cast<std::uint32_t>(d)};
        s.push_back(Event{'M', {}, r});
        thin = r.thin_begin + r.len;
        data = r.data_begin + r.len;
      }
    }
  s.push_back(Event{'d'});
  Log got;
  ASSERT_TRUE(decode(encode(s, 300), got).has_value());
  EXPECT_TRUE(same(got.text, direct_log(s)));
  // A redundant zero last byte is refused at every length.
  const std::string dev = std::string("SD\x01\x02\x03\x04\x05", 7);
  for (std::size_t n = 2; n <= 10; ++n) {
    std::string v(n - 1, '\x81');
    expect_refused(frame_of(dev + "\x80" + v + '\0' + std::string("\x00" "ds", 3)),
                   "sb u-2 9 12345 -\ndev 1 2 5\n", "a zero byte at " + std::to_string(n));
    Log ok;
    const char top = n == 10 ? '\x01' : '\x02';
    auto r = decode(frame_of(dev + "\x80" + v + top + std::string("\x00" "ds", 3)), ok);
    ASSERT_TRUE(r.has_value()) << n << " " << r.error().what;
  }
}

TEST(SpillCodecTest, TypicalRunsTakeThreeBytes) {
  // The 8m bench's runs: near the previous one in both spaces, short, same time.
  th::spill::Encoder enc;
  char buf[th::spill::kMaxRecordBytes];
  char* end = enc.map(buf, th::MappingRun{0, 0, 9, 0});
  EXPECT_EQ(end - buf, 3);
  end = enc.map(buf, th::MappingRun{14, 9, 17, 0});
  EXPECT_EQ(end - buf, 3);
  end = enc.map(buf, th::MappingRun{31, 26, 63, 0});
  EXPECT_EQ(end - buf, 3);
  end = enc.map(buf, th::MappingRun{94, 89, 64, 0});
  EXPECT_EQ(end - buf, 4);  // past the tag's length field
  // The largest records fit kMaxRecordBytes.
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  end = enc.map(buf, th::MappingRun{kMax - 1, 1ull << 63, kMax - 5, 0xffffffffu});
  EXPECT_LE(end - buf, 36);
  end = enc.device(buf, th::DeviceInfo{kMax, {kMax, kMax, 0xffffffffu, 0xffffffffu}});
  EXPECT_EQ(end - buf, 41);
}

}  // namespace

