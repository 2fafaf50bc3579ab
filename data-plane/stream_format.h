// SPDX-License-Identifier: GPL-3.0-or-later
// The thin_send stream (data-plane/STREAM.md): a header naming what the stream was made from
// and for, records in ascending offset order (DATA with a payload, ZERO for a range that must
// read as zeros), an END record with counts and a checksum over the whole stream. Every record
// header carries the CRC-32C of everything before it, so a record lost, repeated or reordered
// is caught where it happens, not at the end. Encoding and decoding only: no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "persistent-data/result.h"

namespace thinmeta::dataplane {

inline constexpr std::uint32_t kStreamVersion = 1;
inline constexpr std::size_t kHeaderBytes = 256;
inline constexpr std::size_t kRecordHeaderBytes = 48;
inline constexpr std::size_t kEndPayloadBytes = 32;
// The largest DATA payload a receiver accepts (senders cut larger runs).
inline constexpr std::uint64_t kMaxDataPayload = 4ull << 20;

// Which state of which thin device: enough to tell two snapshots, two pools or a device
// written since apart without reading data. Compared field by field (see STREAM.md).
struct Identity {
  std::array<std::uint8_t, 16> pool_uuid{};  // the pool superblock's uuid (often zeros)
  std::uint32_t data_block_sectors = 0;      // the pool's data block size
  std::uint64_t thin_id = 0;
  std::uint32_t creation_time = 0;
  std::uint32_t snapshotted_time = 0;
  std::uint64_t mapping_root = 0;            // the device's mapping tree root block
  std::uint64_t mapped_blocks = 0;

  bool operator==(const Identity&) const = default;
  bool empty() const { return *this == Identity{}; }
  // 64 bytes, little-endian.
  void encode(std::uint8_t* p) const;
  static Identity decode(const std::uint8_t* p);
  // A 64-bit digest (for resume tokens and messages).
  std::uint64_t digest() const;
  // Hex of the 64 encoded bytes (receive state files), and back.
  std::string hex() const;
  static std::optional<Identity> from_hex(const std::string& s);
  // "thin 5 of pool <digest>" style, for messages.
  std::string describe() const;
};

enum StreamFlags : std::uint32_t {
  kIncremental = 1u << 0,  // applies onto `base` only
  kMappedOnly = 1u << 1,   // provisioned ranges only, no ZERO records
  kResumed = 1u << 2,      // continues an interrupted stream from resume_offset
};

struct StreamHeader {
  std::uint32_t version = kStreamVersion;
  std::uint32_t flags = 0;
  std::uint64_t virtual_size = 0;  // bytes
  std::uint32_t data_block_sectors = 0;
  std::uint64_t resume_offset = 0;  // bytes; records start at or after it
  Identity base;                    // empty unless kIncremental
  Identity snap;

  bool incremental() const { return flags & kIncremental; }
  bool mapped_only() const { return flags & kMappedOnly; }
  bool resumed() const { return flags & kResumed; }
  void encode(std::uint8_t* p) const;  // kHeaderBytes
  // Checks magic, version, checksum and consistency; error text says what is wrong.
  static Result<StreamHeader> decode(const std::uint8_t* p);
};

enum class RecordType : std::uint32_t { kData = 1, kZero = 2, kEnd = 3 };

struct RecordHeader {
  RecordType type = RecordType::kData;
  std::uint64_t offset = 0;     // bytes in the virtual device (END: the virtual size)
  std::uint64_t length = 0;     // bytes (DATA: the payload; ZERO: the range; END: 32)
  std::uint32_t payload_crc = 0;  // CRC-32C of the payload (DATA, END); 0 for ZERO
  std::uint32_t chain_crc = 0;    // CRC-32C of every stream byte before this record
  std::uint64_t sequence = 0;     // 0 for the first record after the header

  void encode(std::uint8_t* p) const;  // kRecordHeaderBytes (its own CRC in the last 4)
  static Result<RecordHeader> decode(const std::uint8_t* p);
};

struct EndRecord {
  std::uint64_t nr_records = 0;  // DATA and ZERO records
  std::uint64_t data_bytes = 0;
  std::uint64_t zero_bytes = 0;
  void encode(std::uint8_t* p) const;  // kEndPayloadBytes
  static EndRecord decode(const std::uint8_t* p);
};

// A resume token: where an interrupted receive stopped and what it was receiving.
struct ResumeToken {
  std::uint32_t flags = 0;  // the stream's kIncremental / kMappedOnly
  std::uint64_t offset = 0;
  std::uint64_t base_digest = 0;
  std::uint64_t snap_digest = 0;
  std::string encode() const;
  static Result<ResumeToken> decode(const std::string& s);
};

// Running CRC-32C over the stream bytes seen so far.
class StreamCrc {
 public:
  void add(std::span<const std::uint8_t> b);
  std::uint32_t value() const;

 private:
  std::uint32_t reg_ = 0xFFFFFFFFu;
};

}  // namespace thinmeta::dataplane
