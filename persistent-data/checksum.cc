// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/checksum.h"

#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {

std::uint32_t salt(BlockKind kind) {
  switch (kind) {
    case BlockKind::kSuperblock: return 160774;
    case BlockKind::kNode: return 121107;
    case BlockKind::kBitmap: return 240779;
    case BlockKind::kIndex: return 160478;
  }
  return 0;
}

const char* kind_name(BlockKind kind) {
  switch (kind) {
    case BlockKind::kSuperblock: return "superblock";
    case BlockKind::kNode: return "btree node";
    case BlockKind::kBitmap: return "space map bitmap";
    case BlockKind::kIndex: return "metadata index block";
  }
  return "block";
}

std::uint32_t block_checksum(const std::uint8_t* block, BlockKind kind) {
  return crc32c_update(0xFFFFFFFFu, block + 4, kBlockSize - 4) ^ salt(kind);
}

void stamp_checksum(std::uint8_t* block, BlockKind kind) {
  store_le32(block, block_checksum(block, kind));
}

std::optional<BlockKind> identify_block(const std::uint8_t* block) {
  std::uint32_t raw = crc32c_update(0xFFFFFFFFu, block + 4, kBlockSize - 4) ^ load_le32(block);
  for (auto k : {BlockKind::kSuperblock, BlockKind::kNode, BlockKind::kBitmap, BlockKind::kIndex})
    if (raw == salt(k)) return k;
  return std::nullopt;
}

std::optional<std::string> validate_block(const std::uint8_t* block, BlockAddr where,
                                          BlockKind kind) {
  if (load_le32(block) != block_checksum(block, kind))
    return "bad checksum in " + std::string(kind_name(kind)) + " (block " +
           std::to_string(where) + ")";
  BlockAddr self = load_le64(block + 8);
  if (self != where)
    return "bad block number in " + std::string(kind_name(kind)) + " (block " +
           std::to_string(where) + " says it is block " + std::to_string(self) + ")";
  return std::nullopt;
}

}  // namespace thinmeta::pdata
