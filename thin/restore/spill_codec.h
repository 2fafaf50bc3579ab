// SPDX-License-Identifier: GPL-3.0-or-later
// The byte format of SpillSink's record (thin/restore/spill.h): a metadata stream as frames of
// compact records, ~4.5 bytes per mapping run on a typical pool (33 before: the structs).
//
// Frame: payload length (u32 LE, 1 .. kFrameBytes - kHeaderBytes), CRC-32C of the payload
// (u32 LE), the payload: whole records (a record never spans two frames).
// Records, by their first byte:
//   'S' begin superblock (the superblock itself is kept in memory), 's' end superblock (the
//   last record of the last frame), 'd' end device,
//   'D' begin device: varints dev_id, mapped_blocks, transaction_id, creation_time,
//       snapshotted_time (the two times < 2^32),
//   0x80 | T<<6 | L  a mapping run, then the varints
//       origin delta = thin_begin - previous run's thin end (mod 2^64; 0 at a device's start),
//       data delta   = zigzag(data_begin - previous run's data end) (as signed, mod 2^64),
//       only if L == 63: len - 1 - 63 (mod 2^64; else len - 1 == L),
//       only if T: the time (< 2^32; else the previous run's time, 0 at a device's start).
// Varints are LEB128 (7 bits a byte, low first), at most 10 bytes, with no redundant high zero
// byte. Decoding refuses anything else: a checksum, a varint, a kind, a record past its frame's
// end or after the stream's end, a stream that stops before 's'.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "persistent-data/result.h"
#include "thin/sink.h"

namespace thinmeta::thin::spill {

inline constexpr std::size_t kFrameBytes = 1 << 20;  // header included
inline constexpr std::size_t kHeaderBytes = 8;
inline constexpr std::size_t kMaxPayload = kFrameBytes - kHeaderBytes;
inline constexpr std::size_t kMaxRecordBytes = 64;  // a device record: 1 + 3 * 10 + 2 * 5

// The records of one stream, written at p; each returns the end of what it wrote (at most
// kMaxRecordBytes). Keeps the run state (ends and time) between calls.
class Encoder {
 public:
  static char* superblock(char* p) {
    *p = 'S';
    return p + 1;
  }
  static char* end_superblock(char* p) {
    *p = 's';
    return p + 1;
  }
  char* device(char* p, const DeviceInfo& d);
  static char* end_device(char* p) {
    *p = 'd';
    return p + 1;
  }
  char* map(char* p, const MappingRun& r);

 private:
  std::uint64_t thin_end_ = 0, data_end_ = 0;
  std::uint32_t time_ = 0;
};

// Writes the header of the frame that starts at `frame` and whose payload ends at `end`.
void seal_frame(char* frame, const char* end);
// The payload length a header gives, or an error if it is out of range.
Result<std::size_t> frame_length(const char* header);

// Sends the records of each frame to a sink, in order, checking everything.
class Decoder {
 public:
  Decoder(const SuperblockInfo& sb, MetadataSink& out) : sb_(sb), out_(out) {}
  // One frame's payload [p, p + len) and the CRC its header gives. p[len, len +
  // kMaxRecordBytes) must be readable (it is overwritten with zeros: the decoder reads a
  // record without bounds checks, then checks where it ended).
  Result<> frame(char* p, std::size_t len, std::uint32_t crc);
  // Whether 's' was decoded: the stream is whole.
  bool ended() const { return ended_; }

 private:
  Result<> damaged(const char* what) const;

  const SuperblockInfo& sb_;
  MetadataSink& out_;
  std::uint64_t frames_ = 0;
  std::uint64_t thin_end_ = 0, data_end_ = 0;
  std::uint32_t time_ = 0;
  bool started_ = false;  // the first record must be 'S'
  bool ended_ = false;
};

// Reads up to n bytes at offset off into buf (fewer only at the end of the record).
using Reader = std::function<Result<std::size_t>(char* buf, std::size_t n, std::uint64_t off)>;

// Sends the whole record of `size` bytes to out (begin_superblock with sb), reading each frame
// with one call (its payload and the next header; memory: one frame). An error, and no
// end_superblock, unless every frame checks and the stream ends exactly at the record's end.
Result<> replay(const Reader& read, std::uint64_t size, const SuperblockInfo& sb,
                MetadataSink& out);

}  // namespace thinmeta::thin::spill
