// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/superblock.h"

#include <cstring>
#include <string_view>

#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

Superblock decode_superblock(const std::uint8_t* b) {
  Superblock sb;
  sb.csum = load_le32(b + 0);
  sb.flags = load_le32(b + 4);
  sb.blocknr = load_le64(b + 8);
  std::memcpy(sb.uuid.data(), b + 16, 16);
  sb.magic = load_le64(b + 32);
  sb.version = load_le32(b + 40);
  sb.time = load_le32(b + 44);
  sb.trans_id = load_le64(b + 48);
  sb.held_root = load_le64(b + 56);
  sb.data_sm = decode_sm_root(b + 64);
  sb.metadata_sm = decode_sm_root(b + 192);
  sb.data_mapping_root = load_le64(b + 320);
  sb.device_details_root = load_le64(b + 328);
  sb.data_block_size = load_le32(b + 336);
  sb.metadata_block_size = load_le32(b + 340);
  sb.metadata_nr_blocks = load_le64(b + 344);
  sb.compat_flags = load_le32(b + 352);
  sb.compat_ro_flags = load_le32(b + 356);
  sb.incompat_flags = load_le32(b + 360);
  return sb;
}

void encode_superblock(const Superblock& sb, std::uint8_t* b) {
  std::memset(b, 0, kBlockSize);
  store_le32(b + 4, sb.flags);
  store_le64(b + 8, sb.blocknr);
  std::memcpy(b + 16, sb.uuid.data(), 16);
  store_le64(b + 32, sb.magic);
  store_le32(b + 40, sb.version);
  store_le32(b + 44, sb.time);
  store_le64(b + 48, sb.trans_id);
  store_le64(b + 56, sb.held_root);
  encode_sm_root(sb.data_sm, b + 64);
  encode_sm_root(sb.metadata_sm, b + 192);
  store_le64(b + 320, sb.data_mapping_root);
  store_le64(b + 328, sb.device_details_root);
  store_le32(b + 336, sb.data_block_size);
  store_le32(b + 340, sb.metadata_block_size);
  store_le64(b + 344, sb.metadata_nr_blocks);
  store_le32(b + 352, sb.compat_flags);
  store_le32(b + 356, sb.compat_ro_flags);
  store_le32(b + 360, sb.incompat_flags);
  stamp_checksum(b, BlockKind::kSuperblock);
}

bool looks_like_xml(const std::uint8_t* b, std::size_t len) {
  std::string_view s(reinterpret_cast<const char*>(b), std::min<std::size_t>(len, 64));
  std::size_t i = s.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos) return false;
  s.remove_prefix(i);
  return s.starts_with("<superblock") || s.starts_with("<?xml") || s.starts_with("<!DOCTYPE") ||
         s.starts_with("<!--");
}

Result<Superblock> validate_superblock(const std::uint8_t* b, BlockAddr where) {
  const std::string what = where == 0 ? "superblock" : "metadata snapshot superblock (block " +
                                                           std::to_string(where) + ")";
  if (load_le32(b) != block_checksum(b, BlockKind::kSuperblock)) {
    bool zero = true;
    for (std::size_t i = 0; i < kBlockSize && zero; ++i) zero = b[i] == 0;
    if (zero && where == 0)
      return fail(Errc::kChecksum, "bad checksum in " + what +
                                       " (it is all zeroes, as an interrupted or failed "
                                       "thin_restore or thin_repair leaves it: run it again)");
    if (zero) return fail(Errc::kChecksum, "bad checksum in " + what + " (it is all zeroes)");
    return fail(Errc::kChecksum, "bad checksum in " + what);
  }
  Superblock sb = decode_superblock(b);
  if (sb.magic != kSuperblockMagic)
    return fail(Errc::kBadFormat, "bad magic in " + what + " (" + std::to_string(sb.magic) +
                                      ", expected 27022010)");
  if (sb.blocknr != where)
    return fail(Errc::kBadFormat, "bad block number in " + what + " (says it is block " +
                                      std::to_string(sb.blocknr) + ")");
  if (sb.version != 1 && sb.version != 2)
    return fail(Errc::kBadFormat,
                "unsupported metadata version " + std::to_string(sb.version) + " in " + what);
  if (sb.metadata_block_size != kSectorsPerBlock)
    return fail(Errc::kBadFormat, "bad metadata block size " +
                                      std::to_string(sb.metadata_block_size) + " in " + what);
  if (sb.incompat_flags != 0)
    return fail(Errc::kBadFormat, "unsupported incompatible features (" +
                                      std::to_string(sb.incompat_flags) + ") in " + what);
  return sb;
}

Result<Superblock> read_superblock(IoEngine& io, BlockAddr where) {
  if (where >= io.nr_blocks())
    return fail(Errc::kBadFormat, "superblock at block " + std::to_string(where) +
                                      " is beyond the end of the metadata device");
  AlignedBuffer buf(1);
  THINMETA_CHECK(io.read(where, buf.data()));
  return validate_superblock(buf.data(), where);
}

}  // namespace thinmeta::thin
