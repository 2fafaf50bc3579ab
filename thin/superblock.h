// SPDX-License-Identifier: GPL-3.0-or-later
// The dm-thin superblock (block 0, and the held metadata-snapshot copy): FORMAT.md §4, §9.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/io/block.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "persistent-data/space_map/space_map_format.h"

namespace thinmeta::thin {

using pdata::BlockAddr;

inline constexpr std::uint64_t kSuperblockMagic = 27022010;
inline constexpr std::uint32_t kNeedsCheckFlag = 1;
inline constexpr std::uint32_t kMinDataBlockSize = 128;        // sectors (64 KiB)
inline constexpr std::uint32_t kMaxDataBlockSize = 2097152;    // sectors (1 GiB)

struct Superblock {
  std::uint32_t csum = 0;
  std::uint32_t flags = 0;
  BlockAddr blocknr = 0;
  std::array<std::uint8_t, 16> uuid{};
  std::uint64_t magic = kSuperblockMagic;
  std::uint32_t version = 2;
  std::uint32_t time = 0;
  std::uint64_t trans_id = 0;
  BlockAddr held_root = 0;
  pdata::SmRoot data_sm;
  pdata::SmRoot metadata_sm;
  BlockAddr data_mapping_root = 0;
  BlockAddr device_details_root = 0;
  std::uint32_t data_block_size = 0;  // sectors
  std::uint32_t metadata_block_size = pdata::kSectorsPerBlock;
  std::uint64_t metadata_nr_blocks = 0;
  std::uint32_t compat_flags = 0;
  std::uint32_t compat_ro_flags = 0;
  std::uint32_t incompat_flags = 0;

  bool needs_check() const { return flags & kNeedsCheckFlag; }
};

Superblock decode_superblock(const std::uint8_t* block);
// Encodes into a zeroed 4 KiB block and stamps the checksum.
void encode_superblock(const Superblock& sb, std::uint8_t* block);

// Reads block `where` and validates it as a superblock: checksum, self block number, magic,
// version 1 or 2, metadata block size, no unknown incompat features. Errors are one line,
// e.g. "bad checksum in superblock".
Result<Superblock> read_superblock(pdata::IoEngine& io, BlockAddr where);

// Same checks on bytes already read.
Result<Superblock> validate_superblock(const std::uint8_t* block, BlockAddr where);

// True if the first bytes look like the XML that thin_dump prints.
bool looks_like_xml(const std::uint8_t* block, std::size_t len);

}  // namespace thinmeta::thin
