// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/restore/spill_codec.h"

#include <bit>
#include <cstring>
#include <memory>
#include <limits>
#include <string>

#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"

namespace thinmeta::thin::spill {
namespace {

constexpr unsigned kMapTag = 0x80, kTimeBit = 0x40, kLenMask = 63;
constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();

inline char* put_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// The varint at p into v, and its end; nullptr when it is longer than 10 bytes, wider than
// 64 bits or ends in a redundant zero byte. Reads without bounds: the caller pads.
const unsigned char* get_varint_loop(const unsigned char* p, std::uint64_t& v) {
  std::uint64_t b = *p;
  std::uint64_t r = b & 0x7f;
  for (unsigned shift = 7;; shift += 7) {
    b = *++p;
    if (shift == 63) {  // the 10th byte holds bit 63 alone
      if (b != 1) return nullptr;
      v = r | b << 63;
      return p + 1;
    }
    r |= (b & 0x7f) << shift;
    if (b < 0x80) {
      if (b == 0) return nullptr;
      v = r;
      return p + 1;
    }
  }
}

// The same, up to 8 bytes without a loop: the 7-bit groups of one 8-byte load packed together.
inline const unsigned char* get_varint(const unsigned char* p, std::uint64_t& v) {
  if (*p < 0x80) {
    v = *p;
    return p + 1;
  }
  std::uint64_t x = pdata::load_le64(p);
  const std::uint64_t stops = ~x & 0x8080808080808080ull;  // the high bit of the last byte
  if (stops == 0) return get_varint_loop(p, v);
  const unsigned last = static_cast<unsigned>(std::countr_zero(stops)) - 7;  // its bit offset
  x &= stops ^ (stops - 1);  // this varint's bytes only
  if ((x >> last) == 0) return nullptr;  // a redundant zero byte
  x &= 0x7f7f7f7f7f7f7f7full;
  x = (x & 0x007f007f007f007full) | (x & 0x7f007f007f007f00ull) >> 1;
  x = (x & 0x00003fff00003fffull) | (x & 0x3fff00003fff0000ull) >> 2;
  v = (x & 0x000000000fffffffull) | (x & 0x0fffffff00000000ull) >> 4;
  return p + last / 8 + 1;
}

inline std::uint64_t zigzag(std::uint64_t d) {
  return d << 1 ^ (0 - (d >> 63));
}
std::unexpected<Error> damaged(const std::string& what) {
  return fail(Errc::kIo,
              "internal error: the temporary record of the input is damaged (" + what + ")");
}

inline std::uint64_t unzigzag(std::uint64_t z) {
  return z >> 1 ^ (0 - (z & 1));
}

}  // namespace

char* Encoder::device(char* p, const DeviceInfo& d) {
  *p++ = 'D';
  p = put_varint(p, d.dev_id);
  p = put_varint(p, d.details.mapped_blocks);
  p = put_varint(p, d.details.transaction_id);
  p = put_varint(p, d.details.creation_time);
  p = put_varint(p, d.details.snapshotted_time);
  thin_end_ = data_end_ = 0;
  time_ = 0;
  return p;
}

char* Encoder::map(char* p, const MappingRun& r) {
  const std::uint64_t len1 = r.len - 1;
  const bool new_time = r.time != time_;
  char* tag = p++;
  *tag = static_cast<char>(kMapTag | (new_time ? kTimeBit : 0) |
                           (len1 < kLenMask ? len1 : kLenMask));
  p = put_varint(p, r.thin_begin - thin_end_);
  p = put_varint(p, zigzag(r.data_begin - data_end_));
  if (len1 >= kLenMask) p = put_varint(p, len1 - kLenMask);
  if (new_time) p = put_varint(p, r.time);
  thin_end_ = r.thin_begin + r.len;
  data_end_ = r.data_begin + r.len;
  time_ = r.time;
  return p;
}

void seal_frame(char* frame, const char* end) {
  const char* payload = frame + kHeaderBytes;
  const auto len = static_cast<std::size_t>(end - payload);
  pdata::store_le32(reinterpret_cast<std::uint8_t*>(frame), static_cast<std::uint32_t>(len));
  pdata::store_le32(reinterpret_cast<std::uint8_t*>(frame + 4), pdata::crc32c(payload, len));
}

Result<std::size_t> frame_length(const char* header) {
  std::uint32_t len = pdata::load_le32(reinterpret_cast<const std::uint8_t*>(header));
  if (len == 0 || len > kMaxPayload)
    return damaged("a frame of " + std::to_string(len) + " bytes");
  return len;
}

Result<> Decoder::damaged(const char* what) const {
  return spill::damaged("frame " + std::to_string(frames_) + ": " + what);
}

Result<> Decoder::frame(char* p, std::size_t len, std::uint32_t crc) {
  ++frames_;
  if (ended_) return damaged("a frame after the end");
  if (pdata::crc32c(p, len) != crc) return damaged("checksum mismatch");
  if (!started_ && p[0] != 'S') return damaged("no superblock first");
  std::memset(p + len, 0, kMaxRecordBytes);
  const auto* q = reinterpret_cast<const unsigned char*>(p);
  const auto* const end = q + len;
  std::uint64_t a, b, c, d, e;
  while (q < end) {
    const unsigned tag = *q++;
    if (tag & kMapTag) {
      std::uint64_t len1 = tag & kLenMask;
      if (!(q = get_varint(q, a)) || !(q = get_varint(q, b))) return damaged("a bad number");
      if (len1 == kLenMask) {
        if (!(q = get_varint(q, c)) || c > ~std::uint64_t{0} - kLenMask)
          return damaged("a bad length");
        len1 += c;
      }
      if (tag & kTimeBit) {
        if (!(q = get_varint(q, d)) || d > kU32Max || d == time_) return damaged("a bad time");
        time_ = static_cast<std::uint32_t>(d);
      }
      if (q > end) return damaged("a record past the frame's end");
      const MappingRun r{thin_end_ + a, data_end_ + unzigzag(b), len1 + 1, time_};
      thin_end_ = r.thin_begin + r.len;
      data_end_ = r.data_begin + r.len;
      THINMETA_CHECK(out_.map(r));
      continue;
    }
    switch (tag) {
      case 'S':
        if (started_) return damaged("a second superblock");
        started_ = true;
        THINMETA_CHECK(out_.begin_superblock(sb_));
        break;
      case 's':
        // The caller ends the stream, once it knows nothing follows.
        if (q != end) return damaged("a record after the end");
        ended_ = true;
        return {};
      case 'd': THINMETA_CHECK(out_.end_device()); break;
      case 'D': {
        if (!(q = get_varint(q, a)) || !(q = get_varint(q, b)) || !(q = get_varint(q, c)) ||
            !(q = get_varint(q, d)) || !(q = get_varint(q, e)) || d > kU32Max || e > kU32Max)
          return damaged("a bad device");
        if (q > end) return damaged("a record past the frame's end");
        THINMETA_CHECK(out_.begin_device(DeviceInfo{
            a, DeviceDetails{b, c, static_cast<std::uint32_t>(d), static_cast<std::uint32_t>(e)}}));
        thin_end_ = data_end_ = 0;
        time_ = 0;
        break;
      }
      default: return damaged("an unknown record");
    }
  }
  return {};
}

Result<> replay(const Reader& read, std::uint64_t size, const SuperblockInfo& sb,
                MetadataSink& out) {
  // The tail past a frame is the decoder's pad.
  std::unique_ptr<char[]> buf =
      std::make_unique_for_overwrite<char[]>(kFrameBytes + kMaxRecordBytes);
  Decoder dec(sb, out);
  char header[kHeaderBytes];
  THINMETA_TRY(std::size_t n, read(header, sizeof(header), 0));
  if (n != sizeof(header)) return damaged("no frame");
  std::uint64_t off = n;
  for (;;) {
    THINMETA_TRY(std::size_t len, frame_length(header));
    THINMETA_TRY(n, read(buf.get(), len + sizeof(header), off));
    if (n != len && n != len + sizeof(header))
      return damaged("truncated at byte " + std::to_string(off + n));
    off += n;
    const std::uint32_t crc = pdata::load_le32(reinterpret_cast<const std::uint8_t*>(header + 4));
    const bool more = n != len;
    if (more) std::memcpy(header, buf.get() + len, sizeof(header));
    THINMETA_CHECK(dec.frame(buf.get(), len, crc));
    if (dec.ended()) {
      if (more || off != size) return damaged("bytes after the end");
      return out.end_superblock();
    }
    if (!more) return damaged("it ends before the end of the stream");
  }
}

}  // namespace thinmeta::thin::spill
