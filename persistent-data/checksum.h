// SPDX-License-Identifier: GPL-3.0-or-later
// Per-kind block checksums and self-address checks (FORMAT.md §1, §3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "persistent-data/io/block.h"

namespace thinmeta::pdata {

enum class BlockKind { kSuperblock, kNode, kBitmap, kIndex };

std::uint32_t salt(BlockKind kind);
const char* kind_name(BlockKind kind);  // "superblock", "btree node", ...

// The checksum the block should carry: crc32c of bytes [4, 4096), no final inversion, ^ salt.
std::uint32_t block_checksum(const std::uint8_t* block, BlockKind kind);
// Write the checksum into bytes [0, 4).
void stamp_checksum(std::uint8_t* block, BlockKind kind);
// The kind whose salt matches the stored checksum, if any (for scans of unknown blocks).
std::optional<BlockKind> identify_block(const std::uint8_t* block);

// Checksum and self block number (offset 8) of a block read from `where`. Returns a one-line
// description of the damage, or nothing when the block is valid.
std::optional<std::string> validate_block(const std::uint8_t* block, BlockAddr where,
                                          BlockKind kind);

}  // namespace thinmeta::pdata
