// SPDX-License-Identifier: GPL-3.0-or-later
// On-disk space-map structures: the root in the superblock, index entries, bitmap entries
// (FORMAT.md §7).
#pragma once

#include <algorithm>
#include <cstdint>

#include "persistent-data/io/block.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {

inline constexpr std::uint64_t kEntriesPerBitmap = (kBlockSize - 16) * 4;  // 16320
inline constexpr std::size_t kSmRootSize = 32;
inline constexpr std::size_t kIndexEntrySize = 16;
inline constexpr std::uint32_t kMaxMetadataBitmaps = 255;

struct SmRoot {
  std::uint64_t nr_blocks = 0;
  std::uint64_t nr_allocated = 0;
  BlockAddr bitmap_root = 0;     // metadata: index block; data: index btree root
  BlockAddr ref_count_root = 0;  // overflow btree (u64 -> le32), counts >= 3
};

inline SmRoot decode_sm_root(const std::uint8_t* p) {
  return SmRoot{load_le64(p), load_le64(p + 8), load_le64(p + 16), load_le64(p + 24)};
}
inline void encode_sm_root(const SmRoot& r, std::uint8_t* p) {
  store_le64(p, r.nr_blocks);
  store_le64(p + 8, r.nr_allocated);
  store_le64(p + 16, r.bitmap_root);
  store_le64(p + 24, r.ref_count_root);
}

struct IndexEntry {
  BlockAddr blocknr = 0;
  std::uint32_t nr_free = 0;
  std::uint32_t none_free_before = 0;
};

inline IndexEntry decode_index_entry(const std::uint8_t* p) {
  return IndexEntry{load_le64(p), load_le32(p + 8), load_le32(p + 12)};
}
inline void encode_index_entry(const IndexEntry& e, std::uint8_t* p) {
  store_le64(p, e.blocknr);
  store_le32(p + 8, e.nr_free);
  store_le32(p + 12, e.none_free_before);
}

// Two-bit count of entry e in a bitmap block; the even bit of a pair is the high bit.
inline unsigned bitmap_entry(const std::uint8_t* bitmap_block, std::uint64_t e) {
  std::uint64_t w = load_le64(bitmap_block + 16 + 8 * (e / 32));
  unsigned p = static_cast<unsigned>(2 * (e % 32));
  return static_cast<unsigned>(((w >> p) & 1) << 1 | ((w >> (p + 1)) & 1));
}
inline void set_bitmap_entry(std::uint8_t* bitmap_block, std::uint64_t e, unsigned v) {
  std::uint8_t* q = bitmap_block + 16 + 8 * (e / 32);
  std::uint64_t w = load_le64(q);
  unsigned p = static_cast<unsigned>(2 * (e % 32));
  w &= ~(3ull << p);
  w |= std::uint64_t{(v >> 1) & 1} << p | std::uint64_t{v & 1} << (p + 1);
  store_le64(q, w);
}
// Sets entries [e, e + n) to v: a 64-bit word (32 entries) at a time.
inline void fill_bitmap_entries(std::uint8_t* bitmap_block, std::uint64_t e, std::uint64_t n,
                                unsigned v) {
  const std::uint64_t pattern = (((v >> 1) & 1ull) | (v & 1ull) << 1) * 0x5555555555555555ull;
  while (n) {
    std::uint8_t* q = bitmap_block + 16 + 8 * (e / 32);
    unsigned p = static_cast<unsigned>(2 * (e % 32));
    std::uint64_t k = std::min<std::uint64_t>(n, 32 - e % 32);
    std::uint64_t mask = (k == 32 ? ~0ull : (1ull << (2 * k)) - 1) << p;
    store_le64(q, (load_le64(q) & ~mask) | (pattern & mask));
    e += k;
    n -= k;
  }
}

}  // namespace thinmeta::pdata
