// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/pack/pack_format.h"

#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"
#include "persistent-data/io/block.h"

namespace thinmeta::pdata::pack {

std::optional<PackedKind> packed_kind(const std::uint8_t* block) {
  // Salts of the persistent-data users (PACK.md §6.1): thin, cache and era superblocks, btree
  // nodes, space-map bitmaps and index blocks, array blocks (cache/era).
  static constexpr struct {
    std::uint32_t salt;
    PackedKind kind;
  } kSalts[] = {
      {160774, PackedKind::kThinSuperblock}, {9031977, PackedKind::kCacheSuperblock},
      {146538381, PackedKind::kEraSuperblock}, {121107, PackedKind::kNode},
      {240779, PackedKind::kBitmap}, {160478, PackedKind::kIndex},
      {595846735, PackedKind::kArray},
  };
  std::uint32_t k = crc32c_update(0xFFFFFFFFu, block + 4, kBlockSize - 4) ^ load_le32(block);
  for (const auto& s : kSalts)
    if (s.salt == k) return s.kind;
  return std::nullopt;
}

void encode_header(std::uint64_t nr_blocks, std::uint8_t* out) {
  store_le64(out, kMagic);
  store_le64(out + 8, kVersion);
  store_le64(out + 16, kPackBlockSize);
  store_le64(out + 24, nr_blocks);
}

}  // namespace thinmeta::pdata::pack
