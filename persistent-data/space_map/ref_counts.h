// SPDX-License-Identifier: GPL-3.0-or-later
// In-core reference counts for a block space that may be huge (billions of data blocks) but
// sparsely used. The space is cut into pages of 16384 blocks; a page is created on first
// touch, starts sparse (a sorted array of 4-byte (offset, count) entries) and turns dense (2
// bits a block) when the sparse form would be bigger. Counts that do not fit (>= 3) live
// beside the page in a sorted list while few; once many (snapshots make most counts >= 3) the
// page turns into a byte a block, with counts >= 255 in a global map. Memory therefore grows
// with the blocks actually referenced (~4 bytes each in sparse pages, at most ~1 byte a block
// in dense ones), not with the size of the space.
#pragma once

#include <cstdint>
#include <functional>
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace thinmeta::pdata {

class RefCounts {
 public:
  static constexpr unsigned kPageShift = 14;
  static constexpr std::uint64_t kPageBlocks = 1ull << kPageShift;

  explicit RefCounts(std::uint64_t nr_blocks = 0) : nr_blocks_(nr_blocks) {}
  RefCounts(RefCounts&&) noexcept;
  RefCounts& operator=(RefCounts&&) noexcept;
  ~RefCounts();

  std::uint64_t nr_blocks() const { return nr_blocks_; }
  // Pages leaving the sparse form take a byte a block at once instead of 2 bits: for counts
  // (or states, see update_range) that are mostly >= 3, which 2-bit pages keep in a list
  // until they turn to bytes anyway.
  void prefer_byte_pages() { byte_pages_ = true; }
  // Adds `by` to block b's count (b may be beyond nr_blocks(); callers check ranges).
  void inc(std::uint64_t b, std::uint32_t by = 1);
  // Subtracts one; a count of 0 stays 0. Returns the new count.
  std::uint32_t dec(std::uint64_t b);
  void set(std::uint64_t b, std::uint32_t count);
  std::uint32_t get(std::uint64_t b) const;
  // Adds `by` to each of blocks [b, b + len). A run inside a recently touched page that holds
  // a byte a block (the mapping walk of a pool with snapshots: runs of ~16 blocks, most counts
  // 2-4), or 2 bits a block with no count reaching 3 (a pool's first walk), is added here
  // without a call.
  void inc_range(std::uint64_t b, std::uint64_t len, std::uint32_t by = 1) {
    const Recent& r = recent_[(b >> kPageShift) % kRecent];
    if (by == 1 && r.bits && (b >> kPageShift) == r.index &&
        (b & (kPageBlocks - 1)) + len <= kPageBlocks) {
      // A word (32 blocks) a step while no entry of the step is >= 2.
      constexpr std::uint64_t kLow = 0x5555555555555555ull;
      auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
      while (len) {
        unsigned first = off % 32;
        auto cnt = static_cast<unsigned>(std::min<std::uint64_t>(32 - first, len));
        std::uint64_t m = (cnt == 32 ? kLow : ((1ull << (2 * cnt)) - 1) & kLow) << (2 * first);
        std::uint64_t& w = r.bits[off / 32];
        if ((w >> 1) & m) break;
        w += m;
        off += cnt;
        b += cnt;
        len -= cnt;
      }
      if (!len) return;
    }
    if (by == 1 && r.bytes && (b >> kPageShift) == r.index &&
        (b & (kPageBlocks - 1)) + len <= kPageBlocks) {
      std::uint8_t* v = r.bytes + (b & (kPageBlocks - 1));
      std::uint64_t k = add_one_bytes(v, len, kPageBlocks - (b & (kPageBlocks - 1)));
      while (k < len && v[k] < Page::kFar - 1) v[k] = static_cast<std::uint8_t>(v[k] + 1), ++k;
      if (k == len) return;
      b += k;
      len -= k;
    }
    inc_range_slow(b, len, by);
  }
  // Sets block blocks[i]'s count to counts[i], for each i; blocks strictly ascending (a
  // btree leaf's keys). Pages filled in key order are appended to instead of searched.
  void set_sorted(std::span<const std::uint64_t> blocks, std::span<const std::uint32_t> counts);
  // Gives blocks [first, first + counts.size()) the counts in `counts` (0..254), none of which
  // has a count yet (a table of a byte a block kept during a walk: thin_check's metadata
  // references); `first` a multiple of kPageBlocks. Each page is built at once in the form its
  // counts take (sparse, 2 bits, a byte a block), not block by block.
  void set_bytes(std::uint64_t first, std::span<const std::uint8_t> counts);
  // For bulk stores of counts 3..254 into the page holding block b (a reference-count tree's
  // leaf, all of whose keys are in that page): the page's byte array when it holds a byte a
  // block and no count anywhere is kept in the overflow map (so a byte stored there is the
  // block's count); a page not yet created (or sparse and empty) is created so when `create`.
  // Null otherwise (use set_sorted).
  std::uint8_t* count_bytes(std::uint64_t b, bool create);
  // The index of the first block of [first, first + got.size()) whose count is not got[i],
  // got.size() if there is none (a space map's bitmap against the counts computed).
  std::size_t first_mismatch(std::uint64_t first, std::span<const std::uint32_t> got) const;
  // Replaces the count c of each block of [b, b + len) with fn(c, n), n >= 1 being the number
  // of blocks of the range with count c handled by that call: blocks are grouped by count (a
  // 2-bit word or a stretch of equal bytes at once), so fn must act on n blocks as n calls
  // fn(c, 1) would, and the calls do not come in the blocks' order. For small state machines
  // kept per block (e.g. thin_ls's "unseen / owned by device k / shared", which counts the
  // blocks in each state).
  template <typename Fn>
  void update_range(std::uint64_t b, std::uint64_t len, Fn&& fn);
  // Adds `by` to each block of [b, b + len), saturating at `cap` (at most 2, so nothing goes
  // to the overflow map): for "used once or more than once" questions over huge spaces.
  void add_capped(std::uint64_t b, std::uint64_t len, std::uint32_t by, std::uint32_t cap);
  // out[i] = get(begin + i), a page at a time (fast for whole-bitmap comparisons).
  void get_range(std::uint64_t begin, std::span<std::uint32_t> out) const;
  // A space map bitmap's entries for [first, first + len) against these counts (a bitmap's
  // worth: first and len multiples of 64). `entries` is the bitmap's entry area (FORMAT.md §7.3:
  // 2 bits a block, an entry's first bit its high bit, little-endian words); an entry of 3 is
  // completed by `tree` (the reference-count tree's counts, all >= 3; may be null: no entries).
  // Returns the number of non-zero entries when every block agrees without damage: an entry
  // < 3 equals the count and has no tree count; an entry of 3 has a tree count equal to the
  // count. nullopt when any block does not, or when the pages' forms make a quick answer
  // costly (the caller then compares block by block, as without this). Const and cache-free:
  // safe on several threads at once while nothing modifies either RefCounts.
  std::optional<std::uint64_t> matches_bitmap(std::uint64_t first, const std::uint8_t* entries,
                                              std::size_t len, const RefCounts* tree) const;
  // Whether any block of [b, b + len) has a non-zero count (cheap where no page exists).
  bool any_nonzero(std::uint64_t b, std::uint64_t len) const;
  // Number of blocks with a non-zero count.
  std::uint64_t nr_nonzero() const;
  // Number of blocks with a count >= 3 (those a space map keeps in its overflow tree).
  std::uint64_t nr_overflow() const;
  // Calls fn(block, count) for every non-zero count in ascending block order.
  void for_each_nonzero(const std::function<void(std::uint64_t, std::uint32_t)>& fn) const;
  // Bytes of heap in use (approximate), for benchmarks and tests.
  std::size_t memory_bytes() const;

 private:
  // A dense page: 2 bits a block with the counts >= 3 in a sorted list, or, once many counts
  // are >= 3, a byte a block (kFar: the count is in the global map).
  struct Dense {
    std::vector<std::uint64_t> bits;              // empty once `bytes` is used
    std::vector<std::uint32_t> ovf_off, ovf_cnt;  // counts >= 3 of `bits`, sorted by offset
    std::vector<std::uint8_t> bytes;
  };
  // A page is sparse (sorted entries offset << 18 | count, kSparseFar: the count is in the
  // global map) until it holds more entries than 2 bits a block would take, then dense.
  struct Page {
    static constexpr std::size_t kDenseWords = kPageBlocks / 32;
    static constexpr std::size_t kMaxSparse = kDenseWords * 2;  // 4 KiB, as much as `bits`
    static constexpr std::size_t kMaxSmallOverflow = 256;      // then `bytes`: cheaper to update
    static constexpr std::size_t kRangeSmallOverflow = 16;     // the same for inc_range's adds
    static constexpr std::size_t kBytesAfter = 256;              // prefer_byte_pages(): sparse entries
    static constexpr std::uint8_t kFar = 255;
    static constexpr unsigned kCountBits = 18;
    static constexpr std::uint32_t kCountMask = (1u << kCountBits) - 1;
    static constexpr std::uint32_t kSparseFar = kCountMask;

    std::vector<std::uint32_t> sparse;
    std::unique_ptr<Dense> d;  // null while sparse

    bool is_bytes() const { return d && !d->bytes.empty(); }
    bool is_bits() const { return d && d->bytes.empty(); }
    unsigned get2(std::uint32_t off) const {
      return static_cast<unsigned>((d->bits[off / 32] >> (2 * (off % 32))) & 3);
    }
    void set2(std::uint32_t off, unsigned v) {
      std::uint64_t& w = d->bits[off / 32];
      unsigned sh = 2 * (off % 32);
      w = (w & ~(3ull << sh)) | (std::uint64_t{v} << sh);
    }
    // The first sparse entry at or after `off` (walks usually append: checked first).
    std::vector<std::uint32_t>::const_iterator lower(std::uint32_t off) const {
      if (sparse.empty() || (sparse.back() >> kCountBits) < off) return sparse.end();
      return std::lower_bound(sparse.begin(), sparse.end(), off << kCountBits);
    }
    std::vector<std::uint32_t>::iterator lower(std::uint32_t off) {
      if (sparse.empty() || (sparse.back() >> kCountBits) < off) return sparse.end();
      return std::lower_bound(sparse.begin(), sparse.end(), off << kCountBits);
    }
  };
  Page& page(std::uint64_t index);
  const Page* find_page(std::uint64_t index) const;
  // Calls part(p, b, off, i, n) for each page's share of [first, first + len), in block order:
  // b = first + i its first block, p the page holding it (null: none, every count 0), off b's
  // offset in that page, n the share's blocks. A part returning false ends the walk. The read
  // walks (get_range, first_mismatch, any_nonzero); defined in ref_counts.cc.
  template <typename Part>
  void for_each_share(std::uint64_t first, std::uint64_t len, Part&& part) const;
  // find_page without the recent-page cache (thread-safe on a const RefCounts).
  const Page* page_shared(std::uint64_t index) const {
    auto it = pages_.find(index);
    return it == pages_.end() ? nullptr : &it->second;
  }
  // A count in page p (b its block, off its offset in the page).
  std::uint32_t page_get(const Page& p, std::uint64_t b, std::uint32_t off) const;
  void page_set(Page& p, std::uint64_t b, std::uint32_t off, std::uint32_t count);
  void densify(Page& p, std::uint64_t base);
  void inc_range_slow(std::uint64_t b, std::uint64_t len, std::uint32_t by);
  // Gives count `count` to the blocks at offsets [lo, hi) of page p (base: its first block),
  // all 0 and after its last sparse entry, when the sparse form cannot take them all: the page
  // turns dense first.
  void fill_fresh(Page& p, std::uint64_t base, std::uint32_t lo, std::uint32_t hi, std::uint32_t count);
  // Recently looked-up pages, direct-mapped by index (a walk of a snapshot alternates between
  // the region it shares and the blocks it overwrote, spread over a few dozen pages). `bytes`
  // is the page's byte array when it holds a byte a block, else null. Pages never move.
  struct Recent {
    std::uint64_t index = ~0ull;
    Page* page = nullptr;
    std::uint8_t* bytes = nullptr;
    std::uint64_t* bits = nullptr;  // the page's words when it holds 2 bits a block
  };
  static constexpr std::size_t kRecent = 64;
  void note_recent(std::uint64_t index, Page* p) const {
    recent_[index % kRecent] = {index, p, p->is_bytes() ? p->d->bytes.data() : nullptr,
                                p->is_bits() ? p->d->bits.data() : nullptr};
  }
  void forget_recent() const { recent_.fill(Recent{}); }
  // The number of bits set in x, all at even positions (one a 2-bit count): no popcnt
  // instruction in the baseline x86-64 the tools are built for.
  static std::uint32_t count2(std::uint64_t x) {
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return static_cast<std::uint32_t>((x * 0x0101010101010101ull) >> 56);
  }
  void to_bytes(Page& p, std::uint64_t base);
  // kLanes + 16 - n: a 16-byte mask of n leading 0xff lanes (n <= 16).
  static constexpr std::uint8_t kLanes[32] = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  // Adds one to v[0 .. len) sixteen bytes a step while every byte of a step is below
  // kFar - 1 (room: the bytes readable from v); returns how many were added (the caller
  // adds the rest one by one, stopping where the byte form cannot hold the count).
  static std::uint64_t add_one_bytes(std::uint8_t* v, std::uint64_t len, std::uint64_t room) {
#if defined(__SSE2__)
    const __m128i lim = _mm_set1_epi8(static_cast<char>(Page::kFar - 2));
    std::uint64_t k = 0;
    while (k < len && room - k >= 16) {
      std::uint64_t n = std::min<std::uint64_t>(16, len - k);
      auto* at = reinterpret_cast<__m128i*>(v + k);
      __m128i x = _mm_loadu_si128(at);
      __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLanes + 16 - n));
      __m128i ok = _mm_cmpeq_epi8(_mm_max_epu8(x, lim), lim);  // x <= kFar - 2
      if (_mm_movemask_epi8(_mm_andnot_si128(ok, m))) break;
      _mm_storeu_si128(at, _mm_sub_epi8(x, m));  // the n lanes of m are -1: x + 1
      k += n;
    }
    return k;
#else
    (void)v, (void)len, (void)room;
    return 0;
#endif
  }

  std::uint64_t nr_blocks_;
  bool byte_pages_ = false;
  std::unordered_map<std::uint64_t, Page> pages_;  // node based: a Page never moves
  // Counts of kFar bytes and kSparseFar entries.
  std::unordered_map<std::uint64_t, std::uint32_t> overflow_;
  mutable std::array<Recent, kRecent> recent_;
};

template <typename Fn>
void RefCounts::update_range(std::uint64_t b, std::uint64_t len, Fn&& fn) {
  constexpr std::uint64_t kLow = 0x5555555555555555ull;  // the low bit of each 2-bit count
  while (len) {
    const Recent& rec = recent_[(b >> kPageShift) % kRecent];  // page()'s cache, inline
    Page& p = rec.index == b >> kPageShift ? *rec.page : page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len, kPageBlocks - off));
    std::uint32_t k = 0;
    // A tight loop for the page's form (looked at once, not a block) while every new count
    // stays in place; a count out of the form's reach takes the general step (which may
    // change the form), then the form is looked at again.
    while (k < n) {
      if (p.d && !p.d->bytes.empty()) {  // a byte a block: blocks of one count grouped
        std::uint8_t* v = p.d->bytes.data() + off;
        const std::uint32_t room = static_cast<std::uint32_t>(kPageBlocks) - off;  // readable from v
        std::uint32_t c = 0, e = k, r = 0;
        while (k < n) {
          c = v[k];
          if (c == Page::kFar) break;
          e = k + 1;
#if defined(__SSE2__)
          // The stretch's end sixteen bytes a step, and its new count stored the same way.
          const __m128i cc = _mm_set1_epi8(static_cast<char>(c));
          for (; e < n && room - e >= 16; e += 16) {
            auto ne = static_cast<unsigned>(
                ~_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + e)), cc)) & 0xffff);
            if (ne) {
              e += static_cast<std::uint32_t>(__builtin_ctz(ne));
              break;
            }
          }
          e = std::min(e, n);
#endif
          for (; e < n && v[e] == c;) ++e;
          r = fn(c, std::uint64_t{e - k});
          if (r >= Page::kFar) break;
#if defined(__SSE2__)
          if (e - k <= 16 && room - k >= 16) {
            auto* at = reinterpret_cast<__m128i*>(v + k);
            __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLanes + 16 - (e - k)));
            _mm_storeu_si128(at, _mm_or_si128(_mm_andnot_si128(m, _mm_loadu_si128(at)),
                                              _mm_and_si128(m, _mm_set1_epi8(static_cast<char>(r)))));
            k = e;
            continue;
          }
#endif
          std::memset(v + k, static_cast<int>(r), e - k);
          k = e;
        }
        if (k == n) break;
        if (c != Page::kFar) {  // fn gave blocks [k, e) a count >= kFar: the global map
          for (; k < e; ++k) page_set(p, b + k, off + k, r);
          continue;
        }
      } else if (p.d) {  // 2 bits: up to 32 counts at once, by value
        std::uint64_t* bits = p.d->bits.data();
        bool out = false;
        while (k < n) {
          std::uint32_t o = off + k, first = o % 32;
          std::uint32_t cnt = std::min<std::uint32_t>(32 - first, n - k);
          std::uint64_t m = (cnt == 32 ? kLow : ((1ull << (2 * cnt)) - 1) & kLow) << (2 * first);
          std::uint64_t w = bits[o / 32], lo = w & m, hi = (w >> 1) & m;
          std::uint32_t done = cnt;
          if (std::uint64_t three = lo & hi) {  // counts >= 3 (in the page's list): stop there
            done = static_cast<std::uint32_t>(__builtin_ctzll(three)) / 2 - first;
            if (!done) break;
            m &= (1ull << __builtin_ctzll(three)) - 1;
            lo &= m;
            hi &= m;
          }
          // Counts by value: two population counts at most (the third is what is left).
          std::uint64_t m0 = m & ~(lo | hi), m1 = lo & ~hi, m2 = hi & ~lo;
          std::uint32_t n1 = m1 ? count2(m1) : 0, n2 = m2 ? count2(m2) : 0;
          std::uint32_t r0 = m0 ? fn(0u, std::uint64_t{done - n1 - n2}) : 0;
          std::uint32_t r1 = m1 ? fn(1u, std::uint64_t{n1}) : 0;
          std::uint32_t r2 = m2 ? fn(2u, std::uint64_t{n2}) : 0;
          if (r0 < 3 && r1 < 3 && r2 < 3) {
            bits[o / 32] = (w & ~(m * 3)) | m0 * r0 | m1 * r1 | m2 * r2;
            k += done;
            continue;
          }
          // A new count >= 3: these blocks one by one (the page may turn to bytes).
          for (std::uint32_t x = 0; x < done; ++x, ++k) {
            auto c = static_cast<std::uint32_t>((w >> (2 * (first + x))) & 3);
            page_set(p, b + k, off + k, c == 0 ? r0 : c == 1 ? r1 : r2);
          }
          out = true;
          break;
        }
        if (k == n) break;
        if (out) continue;
      } else if (p.sparse.empty() || (p.sparse.back() >> Page::kCountBits) < off + k) {
        // Sparse, the blocks after the last entry (all 0): appended (a walk's first touch).
        std::uint32_t r = fn(0u, std::uint64_t{n - k});
        if (r == 0) break;
        if (r < Page::kSparseFar && p.sparse.size() + (n - k) <= Page::kMaxSparse) {
          for (; k < n; ++k) p.sparse.push_back((off + k) << Page::kCountBits | r);
          break;
        }
        fill_fresh(p, b - off, off + k, off + n, r);
        break;
      } else if (byte_pages_ && p.sparse.size() >= Page::kBytesAfter) {
        // Sparse, blocks among the entries: a byte a block now rather than inserts one by one.
        densify(p, b - off);
        continue;
      }
      page_set(p, b + k, off + k, fn(page_get(p, b + k, off + k), std::uint64_t{1}));
      ++k;
    }
    b += n;
    len -= n;
  }
}

}  // namespace thinmeta::pdata
