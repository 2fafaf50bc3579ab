// SPDX-License-Identifier: GPL-3.0-or-later
// The send stream: what StreamWriter writes StreamReader reads back; any byte flipped, a
// record dropped or repeated, or the stream cut anywhere is an error naming a byte offset;
// resume tokens and identities round-trip and reject damage.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data-plane/stream_format.h"
#include "data-plane/stream_io.h"

namespace {

using namespace thinmeta;
using namespace thinmeta::dataplane;

std::vector<std::uint8_t> make_stream() {
  std::FILE* f = std::tmpfile();
  StreamWriter w(fileno(f));
  StreamHeader h;
  h.flags = kIncremental;
  h.virtual_size = 1 << 20;
  h.data_block_sectors = 128;
  h.base.thin_id = 1;
  h.base.mapping_root = 7;
  h.snap.thin_id = 2;
  h.snap.mapping_root = 9;
  EXPECT_TRUE(w.header(h).has_value());
  std::vector<std::uint8_t> d(4096);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(i * 7);
  EXPECT_TRUE(w.data(0, d).has_value());
  EXPECT_TRUE(w.zero(65536, 65536).has_value());
  EXPECT_TRUE(w.data(131072, std::span(d).first(1024)).has_value());
  EXPECT_TRUE(w.end().has_value());
  std::vector<std::uint8_t> out(static_cast<std::size_t>(w.bytes()));
  std::rewind(f);
  EXPECT_EQ(std::fread(out.data(), 1, out.size(), f), out.size());
  std::fclose(f);
  return out;
}

// Reads a whole stream; the error text, or "" if it is accepted.
std::string read_all(const std::vector<std::uint8_t>& bytes, std::size_t* records = nullptr) {
  std::FILE* f = std::tmpfile();
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::rewind(f);
  StreamReader r(fileno(f));
  std::string err;
  std::size_t n = 0;
  if (auto h = r.header(); !h) {
    err = h.error().what;
  } else {
    for (;;) {
      auto rec = r.next();
      if (!rec) {
        err = rec.error().what;
        break;
      }
      if (rec->type == RecordType::kEnd) break;
      ++n;
      if (rec->type == RecordType::kData) {
        std::vector<std::uint8_t> buf(static_cast<std::size_t>(rec->length));
        if (auto p = r.payload(buf.data()); !p) {
          err = p.error().what;
          break;
        }
      }
    }
  }
  std::fclose(f);
  if (records) *records = n;
  return err;
}

TEST(Stream, RoundTrips) {
  auto s = make_stream();
  std::size_t n = 0;
  EXPECT_EQ(read_all(s, &n), "");
  EXPECT_EQ(n, 3u);
}

TEST(Stream, EveryFlippedByteIsCaught) {
  auto s = make_stream();
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto t = s;
    t[i] ^= 0x10;
    std::string e = read_all(t);
    EXPECT_NE(e, "") << "byte " << i;
  }
}

TEST(Stream, EveryCutIsCaughtWithItsOffset) {
  auto s = make_stream();
  for (std::size_t len : {std::size_t(0), std::size_t(100), std::size_t(256), std::size_t(300),
                          std::size_t(2000), s.size() - 33, s.size() - 1}) {
    std::vector<std::uint8_t> t(s.begin(), s.begin() + static_cast<long>(len));
    std::string e = read_all(t);
    EXPECT_NE(e, "") << len;
    if (len > 0) { EXPECT_NE(e.find("truncated at byte " + std::to_string(len)), std::string::npos) << e; }
  }
  auto t = s;
  t.push_back(0);
  EXPECT_NE(read_all(t).find("after the end record"), std::string::npos);
}

TEST(Stream, ADroppedRecordIsCaughtAtTheNext) {
  auto s = make_stream();
  // Remove the ZERO record (48 bytes after header + DATA(48 + 4096)).
  std::size_t at = 256 + 48 + 4096;
  std::vector<std::uint8_t> t(s);
  t.erase(t.begin() + static_cast<long>(at), t.begin() + static_cast<long>(at + 48));
  std::string e = read_all(t);
  EXPECT_NE(e.find("stream damaged at byte " + std::to_string(at)), std::string::npos) << e;
}

TEST(Stream, TokensAndIdentitiesRoundTrip) {
  ResumeToken t;
  t.flags = kIncremental;
  t.offset = 123 * 512;
  t.base_digest = 0x1122334455667788ull;
  t.snap_digest = 42;
  auto s = t.encode();
  auto back = ResumeToken::decode(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->offset, t.offset);
  EXPECT_EQ(back->base_digest, t.base_digest);
  EXPECT_EQ(back->snap_digest, t.snap_digest);
  s[5] = s[5] == '0' ? '1' : '0';
  EXPECT_FALSE(ResumeToken::decode(s).has_value());
  EXPECT_FALSE(ResumeToken::decode("garbage").has_value());

  Identity i;
  i.thin_id = 5;
  i.mapping_root = 99;
  i.creation_time = 3;
  i.pool_uuid[3] = 1;
  auto j = Identity::from_hex(i.hex());
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(*j, i);
  Identity k = i;
  k.mapped_blocks = 1;
  EXPECT_NE(k.digest(), i.digest());
}

}  // namespace
