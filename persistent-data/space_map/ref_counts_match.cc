// SPDX-License-Identifier: GPL-3.0-or-later
// RefCounts::matches_bitmap: a space map bitmap against the computed counts and the
// reference-count tree's, 64 blocks a step (thin_check's space-map phase, on worker threads).
#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "persistent-data/endian.h"
#include "persistent-data/space_map/ref_counts.h"

namespace thinmeta::pdata {
namespace {

constexpr std::uint64_t kLow = 0x5555555555555555ull;

// The four entries of a bitmap byte, a byte each (an entry's first bit is its high bit).
struct BitmapBytes {
  std::uint8_t v[256][4];
  constexpr BitmapBytes() : v{} {
    for (unsigned x = 0; x < 256; ++x)
      for (unsigned k = 0; k < 4; ++k)
        v[x][k] = static_cast<std::uint8_t>(((x >> (2 * k)) & 1) << 1 | ((x >> (2 * k + 1)) & 1));
  }
};
constexpr BitmapBytes kBitmapBytes;
constexpr std::uint8_t kZeros[64] = {};

// A bitmap word (high bit of each entry first) in RefCounts' 2-bit order (low bit first).
inline std::uint64_t swap_pairs(std::uint64_t x) { return ((x >> 1) & kLow) | ((x & kLow) << 1); }

bool all_zero(const std::uint8_t* v, std::size_t n) {  // n a multiple of 64
  for (std::size_t k = 0; k < n; k += 64) {
    std::uint8_t any = 0;
    for (unsigned m = 0; m < 64; ++m) any |= v[k + m];
    if (any) return false;
  }
  return true;
}

}  // namespace

std::optional<std::uint64_t> RefCounts::matches_bitmap(std::uint64_t first,
                                                       const std::uint8_t* entries,
                                                       std::size_t len,
                                                       const RefCounts* tree) const {
  if (first % 64 || len % 64) return std::nullopt;
  std::uint64_t nonzero = 0;
  for (std::size_t w = 0; w < len / 32; ++w) {
    std::uint64_t x = load_le64(entries + 8 * w);
    nonzero += static_cast<std::uint64_t>(std::popcount((x | (x >> 1)) & kLow));
  }
  // A page's counts for [off, off + n) as bytes (kFar: 255 or more): the page's own bytes,
  // or expanded into buf; null when there is no page (all zero).
  auto bytes_of = [](const Page* p, std::uint32_t off, std::size_t n,
                         std::uint8_t* buf) -> const std::uint8_t* {
    if (!p) return nullptr;
    if (p->is_bytes()) return p->d->bytes.data() + off;
    std::memset(buf, 0, n);
    if (!p->d) {
      for (auto it = p->lower(off); it != p->sparse.end() && (*it >> Page::kCountBits) < off + n; ++it) {
        std::uint32_t c = *it & Page::kCountMask;
        buf[(*it >> Page::kCountBits) - off] = c < Page::kFar ? static_cast<std::uint8_t>(c) : Page::kFar;
      }
      return buf;
    }
    for (std::size_t k = 0; k < n; ++k) buf[k] = static_cast<std::uint8_t>(p->get2(static_cast<std::uint32_t>(off + k)));
    auto at = std::lower_bound(p->d->ovf_off.begin(), p->d->ovf_off.end(), off);
    for (; at != p->d->ovf_off.end() && *at < off + n; ++at) {
      std::uint32_t c = p->d->ovf_cnt[static_cast<std::size_t>(at - p->d->ovf_off.begin())];
      buf[*at - off] = c < Page::kFar ? static_cast<std::uint8_t>(c) : Page::kFar;
    }
    return buf;
  };
  std::vector<std::uint8_t> ebuf, tbuf;  // expansions of pages not held as bytes
  // A segment at a time: the blocks of the bitmap inside one page (pages and bitmaps both
  // start at multiples of 64 blocks, so segments are whole 64-block chunks).
  for (std::size_t i = 0; i < len;) {
    std::uint64_t b = first + i;
    const Page* p = page_shared(b >> kPageShift);
    const Page* t = tree ? tree->page_shared(b >> kPageShift) : nullptr;
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    std::size_t n = std::min<std::size_t>(len - i, kPageBlocks - off);
    const std::uint8_t* e = entries + i / 4;  // four entries a byte
    const std::uint8_t* tv = nullptr;         // the tree's counts; null: none in the segment
    if (t && (t->d || t->lower(off) != t->sparse.end())) {
      if (!t->is_bytes()) tbuf.resize(kPageBlocks);
      tv = bytes_of(t, off, n, tbuf.data());
      if (!t->is_bytes() && all_zero(tv, n)) tv = nullptr;
    }
    if (!tv && (!p || p->is_bits())) {
      // Nothing from the tree: every entry is the count itself and none is 3 (a 3 would be
      // damage). Two bits a block on both sides: a word (32 blocks) a step.
      for (std::size_t k = 0; k < n / 32; ++k) {
        std::uint64_t x = load_le64(e + 8 * k);
        std::uint64_t want = p ? p->d->bits[off / 32 + k] : 0;
        if ((x & (x >> 1) & kLow) || swap_pairs(x) != want) return std::nullopt;
      }
    } else {
      if (p && !p->is_bytes()) ebuf.resize(kPageBlocks);
      const std::uint8_t* v = bytes_of(p, off, n, ebuf.data());
      for (std::size_t k = 0; k < n; k += 64) {
        std::uint8_t bm[64];
        for (unsigned j = 0; j < 16; ++j) std::memcpy(bm + 4 * j, kBitmapBytes.v[e[k / 4 + j]], 4);
        const std::uint8_t* tt = tv ? tv + k : kZeros;
        const std::uint8_t* c = v ? v + k : kZeros;
        std::uint8_t diff = 0;
        for (unsigned m = 0; m < 64; ++m) {
          std::uint8_t three = bm[m] == 3, has_tree = tt[m] != 0;
          std::uint8_t want = three ? tt[m] : bm[m];
          // kFar (255 or more): the count lives elsewhere: not compared here.
          diff |= static_cast<std::uint8_t>((want ^ c[m]) | (three ^ has_tree) | (c[m] == Page::kFar));
        }
        if (diff) return std::nullopt;
      }
    }
    i += n;
  }
  return nonzero;
}

}  // namespace thinmeta::pdata
