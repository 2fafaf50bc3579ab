// SPDX-License-Identifier: GPL-3.0-or-later
// Values of the thin trees: device details (24 bytes) and block_time (FORMAT.md §6).
#pragma once

#include <cstdint>

#include "persistent-data/endian.h"

namespace thinmeta::thin {

inline constexpr std::uint32_t kDetailsValueSize = 24;
inline constexpr std::uint32_t kMappingValueSize = 8;
inline constexpr std::uint64_t kMaxTime = (1ull << 24) - 1;
inline constexpr std::uint64_t kMaxDataBlock = (1ull << 40) - 1;

struct DeviceDetails {
  std::uint64_t mapped_blocks = 0;
  std::uint64_t transaction_id = 0;
  std::uint32_t creation_time = 0;
  std::uint32_t snapshotted_time = 0;
};

inline DeviceDetails decode_details(const std::uint8_t* p) {
  return DeviceDetails{pdata::load_le64(p), pdata::load_le64(p + 8), pdata::load_le32(p + 16),
                       pdata::load_le32(p + 20)};
}
inline void encode_details(const DeviceDetails& d, std::uint8_t* p) {
  pdata::store_le64(p, d.mapped_blocks);
  pdata::store_le64(p + 8, d.transaction_id);
  pdata::store_le32(p + 16, d.creation_time);
  pdata::store_le32(p + 20, d.snapshotted_time);
}

// block_time: data block in bits 24..63, time in bits 0..23.
struct BlockTime {
  std::uint64_t data_block;
  std::uint32_t time;
};
inline BlockTime unpack_block_time(std::uint64_t v) {
  return BlockTime{v >> 24, static_cast<std::uint32_t>(v & kMaxTime)};
}
inline std::uint64_t pack_block_time(std::uint64_t data_block, std::uint32_t time) {
  return (data_block << 24) | (time & kMaxTime);
}

}  // namespace thinmeta::thin
