// SPDX-License-Identifier: GPL-3.0-or-later
// The metadata pack file (thin_metadata_pack / thin_metadata_unpack of thin-provisioning-tools
// 1.x): a 32-byte header, then frames of [le64 length][zlib stream of records] (PACK.md §1-§4).
#pragma once

#include <cstdint>
#include <optional>

namespace thinmeta::pdata::pack {

inline constexpr std::uint64_t kMagic = 0xA537A0AA6309EF77ull;
inline constexpr std::uint64_t kVersion = 3;
inline constexpr std::uint64_t kPackBlockSize = 4096;
inline constexpr std::size_t kHeaderBytes = 32;
inline constexpr std::size_t kFrameHeaderBytes = 8;
// The 1.3.3 packer's frame size (PACK.md §7); its unpacker holds a whole frame in memory.
inline constexpr std::size_t kRecordsPerFrame = 1024;

// The kinds of block a pack carries, identified by checksum salt alone (PACK.md §6.1).
enum class PackedKind {
  kThinSuperblock,
  kCacheSuperblock,
  kEraSuperblock,
  kNode,
  kBitmap,
  kIndex,
  kArray,
};

// The kind whose salt the block's stored checksum matches, if any (one crc32c per block).
std::optional<PackedKind> packed_kind(const std::uint8_t* block);

// The 32-byte header.
void encode_header(std::uint64_t nr_blocks, std::uint8_t* out);

}  // namespace thinmeta::pdata::pack
