// SPDX-License-Identifier: GPL-3.0-or-later
// In-core reference counts for a block space that may be huge (billions of data blocks) but
// sparsely used. The space is cut into pages of 16384 blocks; a page is created on first
// touch, starts sparse (a sorted array of (offset, count) entries) and turns dense (2 bits a
// block) when the sparse form would be bigger. Counts that do not fit (>= 3) live beside the
// page in a sorted list while few; once many (snapshots make most counts >= 3) the page turns
// into a byte a block, with counts >= 255 in a global map. Memory therefore grows with the
// blocks actually referenced, never beyond ~1 byte a block, and not with the size of the space.
#pragma once

#include <cstdint>
#include <functional>
#include <algorithm>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

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
  // Adds `by` to block b's count (b may be beyond nr_blocks(); callers check ranges).
  void inc(std::uint64_t b, std::uint32_t by = 1);
  // Subtracts one; a count of 0 stays 0. Returns the new count.
  std::uint32_t dec(std::uint64_t b);
  void set(std::uint64_t b, std::uint32_t count);
  std::uint32_t get(std::uint64_t b) const;
  // Adds `by` to each of blocks [b, b + len).
  void inc_range(std::uint64_t b, std::uint64_t len, std::uint32_t by = 1);
  // Replaces the count c of each block of [b, b + len), in order, with fn(c): one pass for
  // small state machines kept per block (e.g. thin_ls's "unseen / owned by device k / shared").
  template <typename Fn>
  void update_range(std::uint64_t b, std::uint64_t len, Fn&& fn);
  // Adds `by` to each block of [b, b + len), saturating at `cap` (at most 2, so nothing goes
  // to the overflow map): for "used once or more than once" questions over huge spaces.
  void add_capped(std::uint64_t b, std::uint64_t len, std::uint32_t by, std::uint32_t cap);
  // How many blocks of [b, b + len) have a count of exactly `count` (count < 3).
  std::uint64_t count_equal(std::uint64_t b, std::uint64_t len, std::uint32_t count) const;
  // out[i] = get(begin + i), a page at a time (fast for whole-bitmap comparisons).
  void get_range(std::uint64_t begin, std::span<std::uint32_t> out) const;
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
  // Sparse entries pack (offset << 2 | small count); dense is 2 bits a block; a small count of
  // 3 means "see the overflow list". A page of many counts >= 3 keeps `bytes` alone.
  struct Page {
    static constexpr std::size_t kDenseWords = kPageBlocks / 32;
    static constexpr std::size_t kMaxSparse = kDenseWords * 2;  // same bytes as dense
    static constexpr std::size_t kMaxSmallOverflow = 256;  // then `bytes`: cheaper to update
    static constexpr std::uint8_t kFar = 255;                   // in the global map

    std::vector<std::uint32_t> sparse;
    std::vector<std::uint64_t> dense;  // empty while sparse
    std::vector<std::uint32_t> ovf_off, ovf_cnt;  // counts >= 3, sorted by offset
    std::vector<std::uint8_t> bytes;   // non-empty: the whole page is here (kFar: global map)

    unsigned get2(std::uint32_t off) const {
      if (!dense.empty()) return static_cast<unsigned>((dense[off / 32] >> (2 * (off % 32))) & 3);
      auto it = lower(off);
      return it != sparse.end() && (*it >> 2) == off ? (*it & 3) : 0;
    }
    void set2(std::uint32_t off, unsigned v) {
      if (!dense.empty()) {
        std::uint64_t& w = dense[off / 32];
        unsigned sh = 2 * (off % 32);
        w = (w & ~(3ull << sh)) | (std::uint64_t{v} << sh);
        return;
      }
      auto it = lower(off);
      if (it != sparse.end() && (*it >> 2) == off) {
        if (v)
          *it = (off << 2) | v;
        else
          sparse.erase(it);
        return;
      }
      if (!v) return;
      sparse.insert(it, (off << 2) | v);
      if (sparse.size() > kMaxSparse) densify();
    }
    std::vector<std::uint32_t>::const_iterator lower(std::uint32_t off) const {
      // Fast path: walks usually touch blocks in ascending order.
      if (sparse.empty() || (sparse.back() >> 2) < off) return sparse.end();
      return std::lower_bound(sparse.begin(), sparse.end(), off << 2);
    }
    std::vector<std::uint32_t>::iterator lower(std::uint32_t off) {
      if (sparse.empty() || (sparse.back() >> 2) < off) return sparse.end();
      return std::lower_bound(sparse.begin(), sparse.end(), off << 2);
    }
    void densify() {
      dense.assign(kDenseWords, 0);
      for (std::uint32_t e : sparse) {
        std::uint32_t off = e >> 2;
        dense[off / 32] |= std::uint64_t{e & 3} << (2 * (off % 32));
      }
      sparse.clear();
      sparse.shrink_to_fit();
    }
    std::size_t bytes_used() const {
      return sparse.capacity() * 4 + dense.capacity() * 8 + ovf_off.capacity() * 8 +
             bytes.capacity() + sizeof(*this);
    }
  };
  Page& page(std::uint64_t index);
  const Page* find_page(std::uint64_t index) const;
  // A count in page p (b its block, off its offset in the page).
  std::uint32_t page_get(const Page& p, std::uint64_t b, std::uint32_t off) const;
  void page_set(Page& p, std::uint64_t b, std::uint32_t off, std::uint32_t count);
  void to_bytes(Page& p, std::uint64_t base);

  std::uint64_t nr_blocks_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Page>> pages_;
  std::unordered_map<std::uint64_t, std::uint32_t> overflow_;  // counts >= 255 of byte pages
  // The page last looked up: walks touch one page many times in a row.
  mutable std::uint64_t last_index_ = ~0ull;
  mutable Page* last_ = nullptr;
};

template <typename Fn>
void RefCounts::update_range(std::uint64_t b, std::uint64_t len, Fn&& fn) {
  while (len) {
    Page& p = page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len, kPageBlocks - off));
    for (std::uint32_t k = 0; k < n; ++k) {
      std::uint32_t o = off + k;
      if (!p.bytes.empty() && p.bytes[o] != Page::kFar) {  // the common case: a byte
        std::uint32_t v = fn(std::uint32_t{p.bytes[o]});
        if (v < Page::kFar)
          p.bytes[o] = static_cast<std::uint8_t>(v);
        else
          page_set(p, b + k, o, v);
        continue;
      }
      if (!p.dense.empty()) {  // 2 bits: in place while the value stays < 3
        std::uint64_t& w = p.dense[o / 32];
        unsigned sh = 2 * (o % 32);
        auto c = static_cast<std::uint32_t>((w >> sh) & 3);
        if (c < 3) {
          std::uint32_t v = fn(c);
          if (v < 3)
            w = (w & ~(3ull << sh)) | (std::uint64_t{v} << sh);
          else
            page_set(p, b + k, o, v);
          continue;
        }
      }
      page_set(p, b + k, o, fn(page_get(p, b + k, o)));
    }
    b += n;
    len -= n;
  }
}

}  // namespace thinmeta::pdata
