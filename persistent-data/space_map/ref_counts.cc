// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/ref_counts.h"

#include <algorithm>
#include <cstring>

#include "persistent-data/endian.h"

namespace thinmeta::pdata {

RefCounts::~RefCounts() = default;

RefCounts::RefCounts(RefCounts&& o) noexcept
    : nr_blocks_(o.nr_blocks_), byte_pages_(o.byte_pages_), pages_(std::move(o.pages_)), overflow_(std::move(o.overflow_)),
      recent_(o.recent_) {
  o.pages_.clear();
  o.overflow_.clear();
  o.forget_recent();
}

RefCounts& RefCounts::operator=(RefCounts&& o) noexcept {
  if (this == &o) return *this;
  nr_blocks_ = o.nr_blocks_;
  byte_pages_ = o.byte_pages_;
  pages_ = std::move(o.pages_);
  overflow_ = std::move(o.overflow_);
  recent_ = o.recent_;
  o.pages_.clear();
  o.overflow_.clear();
  o.forget_recent();
  return *this;
}

RefCounts::Page& RefCounts::page(std::uint64_t index) {
  const Recent& r = recent_[index % kRecent];
  if (r.index == index) return *r.page;
  Page& p = pages_[index];
  note_recent(index, &p);
  return p;
}

const RefCounts::Page* RefCounts::find_page(std::uint64_t index) const {
  const Recent& r = recent_[index % kRecent];
  if (r.index == index) return r.page;
  auto it = pages_.find(index);
  if (it == pages_.end()) return nullptr;
  note_recent(index, const_cast<Page*>(&it->second));
  return &it->second;
}

template <typename Part>
void RefCounts::for_each_share(std::uint64_t first, std::uint64_t len, Part&& part) const {
  for (std::uint64_t i = 0; i < len;) {
    std::uint64_t b = first + i;
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len - i, kPageBlocks - off));
    if (!part(find_page(b >> kPageShift), b, off, i, n)) return;
    i += n;
  }
}

std::uint32_t RefCounts::page_get(const Page& p, std::uint64_t b, std::uint32_t off) const {
  if (!p.d) {
    auto it = p.lower(off);
    if (it == p.sparse.end() || (*it >> Page::kCountBits) != off) return 0;
    std::uint32_t c = *it & Page::kCountMask;
    return c != Page::kSparseFar ? c : overflow_.at(b);
  }
  if (!p.d->bytes.empty()) {
    std::uint8_t v = p.d->bytes[off];
    return v != Page::kFar ? v : overflow_.at(b);
  }
  unsigned small = p.get2(off);
  if (small < 3) return small;
  auto it = std::lower_bound(p.d->ovf_off.begin(), p.d->ovf_off.end(), off);
  return p.d->ovf_cnt[static_cast<std::size_t>(it - p.d->ovf_off.begin())];
}

namespace {

// The eight 2-bit counts of v, a byte each (the lowest bits first), as a little-endian word:
// field i moves from bit 2i to bit 8i in three halving steps.
constexpr std::uint64_t spread8(std::uint16_t v) {
  std::uint64_t x = v;
  x = (x | (x << 24)) & 0x000000ff000000ffull;  // fields 4-7 to bits 32-39
  x = (x | (x << 12)) & 0x000f000f000f000full;  // fields 2-3 (and 6-7) 16 bits up
  x = (x | (x << 6)) & 0x0303030303030303ull;   // odd fields 8 bits up
  return x;
}
static_assert(spread8(0xe4e4) == 0x0302010003020100ull);
static_assert(spread8(0x8001) == 0x0200000000000001ull);

}  // namespace

void RefCounts::densify(Page& p, std::uint64_t base) {
  auto d = std::make_unique<Dense>();
  std::size_t big = 0;
  for (std::uint32_t e : p.sparse) big += (e & Page::kCountMask) >= 3;
  if (byte_pages_ || big > Page::kMaxSmallOverflow) {
    // Would turn into a byte a block at once (e.g. a snapshot-shared region): straight there.
    d->bytes.assign(kPageBlocks, 0);
    for (std::uint32_t e : p.sparse) {
      std::uint32_t off = e >> Page::kCountBits, c = e & Page::kCountMask;
      if (c == Page::kSparseFar) c = overflow_.at(base + off);  // stays in the map: >= kFar
      d->bytes[off] = c < Page::kFar ? static_cast<std::uint8_t>(c) : Page::kFar;
      if (c >= Page::kFar) overflow_[base + off] = c;
    }
    p.sparse.clear();
    p.sparse.shrink_to_fit();
    p.d = std::move(d);
    note_recent(base >> kPageShift, &p);
    return;
  }
  d->bits.assign(Page::kDenseWords, 0);
  for (std::uint32_t e : p.sparse) {
    std::uint32_t off = e >> Page::kCountBits, c = e & Page::kCountMask;
    if (c == Page::kSparseFar) {
      c = overflow_.at(base + off);
      overflow_.erase(base + off);
    }
    d->bits[off / 32] |= std::uint64_t{std::min<std::uint32_t>(c, 3)} << (2 * (off % 32));
    if (c >= 3) {  // sparse entries are sorted: so is the list
      d->ovf_off.push_back(off);
      d->ovf_cnt.push_back(c);
    }
  }
  p.sparse.clear();
  p.sparse.shrink_to_fit();
  p.d = std::move(d);
  note_recent(base >> kPageShift, &p);
}

void RefCounts::to_bytes(Page& p, std::uint64_t base) {
  Dense& d = *p.d;
  d.bytes.resize(kPageBlocks);
  for (std::size_t w = 0; w < d.bits.size(); ++w) {
    std::uint64_t word = d.bits[w];
    std::uint8_t* out = d.bytes.data() + w * 32;
    for (unsigned k = 0; k < 4; ++k) {
      std::uint64_t x = spread8(static_cast<std::uint16_t>(word >> (16 * k)));
      store_le64(out + 8 * k, x);
    }
  }
  for (std::size_t k = 0; k < d.ovf_off.size(); ++k) {
    std::uint32_t c = d.ovf_cnt[k];
    d.bytes[d.ovf_off[k]] = c < Page::kFar ? static_cast<std::uint8_t>(c) : Page::kFar;
    if (c >= Page::kFar) overflow_[base + d.ovf_off[k]] = c;
  }
  std::vector<std::uint64_t>().swap(d.bits);
  std::vector<std::uint32_t>().swap(d.ovf_off);
  std::vector<std::uint32_t>().swap(d.ovf_cnt);
  note_recent(base >> kPageShift, &p);
}

void RefCounts::page_set(Page& p, std::uint64_t b, std::uint32_t off, std::uint32_t count) {
  if (!p.d) {
    auto it = p.lower(off);
    bool found = it != p.sparse.end() && (*it >> Page::kCountBits) == off;
    if (found && (*it & Page::kCountMask) == Page::kSparseFar) overflow_.erase(b);
    if (!count) {
      if (found) p.sparse.erase(it);
      return;
    }
    std::uint32_t e = off << Page::kCountBits | std::min(count, Page::kSparseFar);
    if (count >= Page::kSparseFar) overflow_[b] = count;
    if (found) {
      *it = e;
      return;
    }
    p.sparse.insert(it, e);
    if (p.sparse.size() > Page::kMaxSparse) densify(p, b - off);
    return;
  }
  Dense& d = *p.d;
  if (d.bytes.empty()) {
    unsigned old = p.get2(off);
    auto it = std::lower_bound(d.ovf_off.begin(), d.ovf_off.end(), off);
    auto i = static_cast<std::size_t>(it - d.ovf_off.begin());
    if (count < 3) {
      if (old == 3) {
        d.ovf_cnt.erase(d.ovf_cnt.begin() + static_cast<std::ptrdiff_t>(i));
        d.ovf_off.erase(it);
      }
      p.set2(off, count);
      return;
    }
    if (old == 3) {
      d.ovf_cnt[i] = count;
      return;
    }
    if (d.ovf_off.size() < Page::kMaxSmallOverflow) {
      d.ovf_off.insert(it, off);
      d.ovf_cnt.insert(d.ovf_cnt.begin() + static_cast<std::ptrdiff_t>(i), count);
      p.set2(off, 3);
      return;
    }
    // Many counts >= 3 in this page: a byte a block from now on.
    to_bytes(p, b - off);
  }
  std::uint8_t& v = d.bytes[off];
  if (v == Page::kFar) overflow_.erase(b);
  if (count < Page::kFar) {
    v = static_cast<std::uint8_t>(count);
  } else {
    v = Page::kFar;
    overflow_[b] = count;
  }
}

void RefCounts::fill_fresh(Page& p, std::uint64_t base, std::uint32_t lo, std::uint32_t hi,
                           std::uint32_t count) {
  if (!p.d && p.sparse.size() + (hi - lo) > Page::kMaxSparse) densify(p, base);
  if (p.is_bytes() && count < Page::kFar) {
    std::memset(p.d->bytes.data() + lo, static_cast<int>(count), hi - lo);
    return;
  }
  for (std::uint32_t o = lo; o < hi; ++o) page_set(p, base + o, o, count);
}

bool RefCounts::any_nonzero(std::uint64_t b, std::uint64_t len) const {
  bool any = false;
  for_each_share(b, len, [&](const Page* p, std::uint64_t, std::uint32_t lo, std::uint64_t,
                             std::uint32_t n) {
    if (!p) return true;
    const std::uint32_t hi = lo + n;
    if (!p->d) {  // sparse entries are all non-zero
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), lo << Page::kCountBits);
      any = it != p->sparse.end() && (*it >> Page::kCountBits) < hi;
    } else if (p->is_bytes()) {
      for (std::uint32_t o = lo; o < hi && !any; ++o) any = p->d->bytes[o] != 0;
    } else {
      for (std::uint32_t o = lo; o < hi && !any; ++o) any = p->get2(o) != 0;
    }
    return !any;
  });
  return any;
}

std::uint32_t RefCounts::get(std::uint64_t b) const {
  const Page* p = find_page(b >> kPageShift);
  if (!p) return 0;
  return page_get(*p, b, static_cast<std::uint32_t>(b & (kPageBlocks - 1)));
}

void RefCounts::get_range(std::uint64_t begin, std::span<std::uint32_t> out) const {
  for_each_share(begin, out.size(), [&](const Page* p, std::uint64_t b, std::uint32_t off,
                                        std::uint64_t i, std::uint32_t n) {
    std::uint32_t* o = out.data() + i;
    if (!p) {
      std::fill_n(o, n, 0u);
    } else if (!p->d) {  // sparse: zeros, then the few entries in range
      std::fill_n(o, n, 0u);
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), off << Page::kCountBits);
      for (; it != p->sparse.end() && (*it >> Page::kCountBits) < off + n; ++it) {
        std::uint32_t at = *it >> Page::kCountBits;
        o[at - off] = page_get(*p, b + (at - off), at);
      }
    } else if (p->is_bytes()) {
      const std::uint8_t* v = p->d->bytes.data() + off;
      for (std::size_t k = 0; k < n; ++k) o[k] = v[k];
      for (std::size_t k = 0; k < n; ++k)
        if (v[k] == Page::kFar) o[k] = overflow_.at(b + k);
    } else {  // two bits: a word at a time, then the few counts >= 3
      bool any3 = false;
      for (std::size_t k = 0; k < n;) {
        auto at = static_cast<std::uint32_t>(off + k);
        std::uint64_t word = p->d->bits[at / 32] >> (2 * (at % 32));
        std::size_t m = std::min<std::size_t>(n - k, 32 - at % 32);
        any3 |= (word & (word >> 1) & (m == 32 ? ~0ull : (1ull << (2 * m)) - 1) &
                 0x5555555555555555ull) != 0;
        for (std::size_t j = 0; j < m; ++j) o[k + j] = static_cast<std::uint32_t>((word >> (2 * j)) & 3);
        k += m;
      }
      if (any3)
        for (std::size_t k = 0; k < n; ++k)
          if (o[k] == 3) o[k] = page_get(*p, b + k, static_cast<std::uint32_t>(off + k));
    }
    return true;
  });
}

void RefCounts::set(std::uint64_t b, std::uint32_t count) {
  page_set(page(b >> kPageShift), b, static_cast<std::uint32_t>(b & (kPageBlocks - 1)), count);
}

void RefCounts::inc(std::uint64_t b, std::uint32_t by) {
  if (!by) return;
  Page& p = page(b >> kPageShift);
  auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
  if (p.is_bytes() && by < Page::kFar) {
    std::uint8_t& v = p.d->bytes[off];
    if (v < Page::kFar - by) {
      v = static_cast<std::uint8_t>(v + by);
      return;
    }
  }
  page_set(p, b, off, page_get(p, b, off) + by);
}

void RefCounts::inc_range_slow(std::uint64_t b, std::uint64_t len, std::uint32_t by) {
  if (!by) return;
  while (len) {
    Page& p = page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len, kPageBlocks - off));
    std::uint32_t k = 0;
    if (!p.d && by < Page::kSparseFar) {
      if (p.sparse.size() + n > Page::kMaxSparse) {
        densify(p, b - off);  // as adding one by one would, soon
      } else if (p.sparse.empty() || (p.sparse.back() >> Page::kCountBits) < off) {
        for (std::uint32_t o = off; o < off + n; ++o) p.sparse.push_back(o << Page::kCountBits | by);
        k = n;  // appended (a walk's ascending runs)
      } else {
        // Among the entries: a run none of whose blocks has an entry yet (a snapshot's own
        // blocks between the ones counted) goes in with one insert, not one a block.
        auto at = std::lower_bound(p.sparse.begin(), p.sparse.end(), off << Page::kCountBits);
        if (at == p.sparse.end() || (*at >> Page::kCountBits) >= off + n) {
          std::uint32_t fresh[64];
          for (std::uint32_t done = 0; done < n;) {
            auto m = std::min<std::uint32_t>(n - done, 64);
            for (std::uint32_t x = 0; x < m; ++x) fresh[x] = (off + done + x) << Page::kCountBits | by;
            at = p.sparse.insert(at, fresh, fresh + m) + m;
            done += m;
          }
          k = n;
        }
      }
    }
    while (k < n) {
      // Tight loops while the page's form allows an in-place add; one general step otherwise
      // (which may change the form).
      if (p.is_bytes() && by < Page::kFar) {
        std::uint8_t* v = p.d->bytes.data() + off;
        const auto lim = static_cast<std::uint8_t>(Page::kFar - by);
        while (k < n && v[k] < lim) v[k] = static_cast<std::uint8_t>(v[k] + by), ++k;
      } else if (p.is_bits() && by < 3) {
        // A word (32 entries) at a time: m has the low bit of each entry in range; the add
        // is safe when no entry would reach 3 (by 1: none >= 2; by 2: all 0).
        constexpr std::uint64_t kLow = 0x5555555555555555ull;
        while (k < n) {
          std::uint32_t o = off + k;
          unsigned first = o % 32;
          unsigned cnt = std::min<std::uint32_t>(32 - first, n - k);
          std::uint64_t m = (cnt == 32 ? kLow : ((1ull << (2 * cnt)) - 1) & kLow) << (2 * first);
          std::uint64_t& w = p.d->bits[o / 32];
          std::uint64_t fail = (by == 1 ? (w >> 1) : (w | (w >> 1))) & m;
          if (fail) {  // add up to the first entry that would overflow, then the slow step
            // Entries reaching 3 now (those at 3 already are in the list): past a few, the
            // page takes a byte a block now (a range added to is a snapshot-shared region
            // whose counts go >= 3 together; each list insert moves the list).
            std::uint64_t fresh = fail & ~(w & (w >> 1));
            if (p.d->ovf_off.size() + static_cast<std::size_t>(__builtin_popcountll(fresh)) >
                Page::kRangeSmallOverflow) {
              to_bytes(p, b - off);
              break;
            }
            auto bit = static_cast<unsigned>(__builtin_ctzll(fail));
            std::uint64_t ok = m & ((1ull << bit) - 1);
            w += by == 1 ? ok : ok << 1;
            k += bit / 2 - first;
            break;
          }
          w += by == 1 ? m : m << 1;
          k += cnt;
        }
      }
      if (k == n) break;
      if (p.is_bytes() && by < Page::kFar && p.d->bytes[off + k] < Page::kFar - by)
        continue;  // just turned into bytes: the tight loop again
      page_set(p, b + k, off + k, page_get(p, b + k, off + k) + by);
      ++k;
    }
    b += n;
    len -= n;
  }
}

std::uint64_t RefCounts::nr_overflow() const {
  std::uint64_t n = 0;
  for (const auto& [idx, p] : pages_) {
    if (!p.d) {
      for (std::uint32_t e : p.sparse) n += (e & Page::kCountMask) >= 3;
    } else if (p.is_bytes()) {
      for (std::uint8_t v : p.d->bytes) n += v >= 3;
    } else {  // a count is >= 3 exactly when its 2-bit entry is 3
      for (std::uint64_t w : p.d->bits)
        n += static_cast<std::uint64_t>(__builtin_popcountll(w & (w >> 1) & 0x5555555555555555ull));
    }
  }
  return n;
}

std::uint32_t RefCounts::dec(std::uint64_t b) {
  std::uint32_t c = get(b);
  if (c == 0) return 0;
  set(b, c - 1);
  return c - 1;
}

void RefCounts::add_capped(std::uint64_t b, std::uint64_t len, std::uint32_t by,
                           std::uint32_t cap) {
  cap = std::min<std::uint32_t>(cap, 2);
  while (len) {
    Page& p = page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    std::uint64_t n = std::min<std::uint64_t>(len, kPageBlocks - off);
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint32_t o = off + i;
      if (p.is_bytes()) {
        std::uint8_t& v = p.d->bytes[o];
        if (v < cap) v = static_cast<std::uint8_t>(std::min<std::uint64_t>(v + by, cap));
      } else if (p.is_bits()) {
        unsigned c = p.get2(o);
        if (c < cap) p.set2(o, static_cast<unsigned>(std::min<std::uint64_t>(c + by, cap)));
      } else {
        std::uint32_t c = page_get(p, b + i, o);
        if (c < cap) page_set(p, b + i, o, static_cast<std::uint32_t>(std::min<std::uint64_t>(c + by, cap)));
      }
    }
    b += n;
    len -= n;
  }
}

std::uint64_t RefCounts::nr_nonzero() const {
  std::uint64_t n = 0;
  for (const auto& [idx, p] : pages_) {
    if (!p.d) {
      n += p.sparse.size();
    } else if (p.is_bytes()) {
      for (std::uint8_t v : p.d->bytes) n += v != 0;
    } else {
      for (std::uint64_t w : p.d->bits) {
        // A 2-bit entry is non-zero if either bit is set.
        std::uint64_t nz = (w | (w >> 1)) & 0x5555555555555555ull;
        n += static_cast<std::uint64_t>(__builtin_popcountll(nz));
      }
    }
  }
  return n;
}

void RefCounts::for_each_nonzero(
    const std::function<void(std::uint64_t, std::uint32_t)>& fn) const {
  std::vector<std::uint64_t> idx;
  idx.reserve(pages_.size());
  for (const auto& [i, p] : pages_) idx.push_back(i);
  std::sort(idx.begin(), idx.end());
  for (std::uint64_t i : idx) {
    const Page& p = pages_.at(i);
    std::uint64_t base = i << kPageShift;
    auto emit = [&](std::uint32_t off) { fn(base + off, page_get(p, base + off, off)); };
    if (!p.d) {
      for (std::uint32_t e : p.sparse) emit(e >> Page::kCountBits);
    } else if (p.is_bytes()) {
      for (std::uint32_t off = 0; off < kPageBlocks; ++off)
        if (p.d->bytes[off]) emit(off);
    } else {
      for (std::size_t w = 0; w < p.d->bits.size(); ++w) {
        std::uint64_t word = p.d->bits[w];
        while (word) {
          unsigned bit = static_cast<unsigned>(__builtin_ctzll(word)) & ~1u;
          emit(static_cast<std::uint32_t>(w * 32 + bit / 2));
          word &= ~(3ull << bit);
        }
      }
    }
  }
}

std::size_t RefCounts::memory_bytes() const {
  // A map node, its bucket and the Page; then what each page holds.
  std::size_t n = pages_.size() * (sizeof(Page) + 32) + overflow_.size() * 40;
  for (const auto& [i, p] : pages_) {
    n += p.sparse.capacity() * 4;
    if (p.d)
      n += sizeof(Dense) + p.d->bits.capacity() * 8 + p.d->ovf_off.capacity() * 8 +
           p.d->bytes.capacity();
  }
  return n;
}

}  // namespace thinmeta::pdata

namespace thinmeta::pdata {

void RefCounts::set_sorted(std::span<const std::uint64_t> blocks,
                           std::span<const std::uint32_t> counts) {
  std::size_t i = 0, n = blocks.size();
  while (i < n) {
    std::uint64_t index = blocks[i] >> kPageShift;
    Page& p = page(index);
    // The group in this page: usually the whole rest (a leaf spans one or two pages).
    std::size_t j = n;
    if (blocks[n - 1] >> kPageShift != index)
      j = static_cast<std::size_t>(
          std::upper_bound(blocks.begin() + static_cast<std::ptrdiff_t>(i), blocks.end(),
                           ((index + 1) << kPageShift) - 1) - blocks.begin());
    auto off_of = [](std::uint64_t b) { return static_cast<std::uint32_t>(b & (kPageBlocks - 1)); };
    if (!p.d && p.sparse.empty() && j - i >= 64) {
      // A new page given many counts >= 3 at once (a snapshot-shared region of a reference-
      // count tree): a byte a block now, as densify would choose once it filled.
      bool all_big = true;
      for (std::size_t k = i; k < j; ++k) all_big &= counts[k] >= 3;
      if (all_big) {
        p.d = std::make_unique<Dense>();
        p.d->bytes.assign(kPageBlocks, 0);
        note_recent(index, &p);
      }
    }
    if (p.is_bytes()) {
      std::uint8_t* v = p.d->bytes.data();
      if (overflow_.empty()) {
        // No kFar byte anywhere: plain stores, unless a count needs the overflow map (then
        // the group again, entry by entry: the stores are redone with the same values).
        std::uint32_t most = 0;
        for (std::size_t k = i; k < j; ++k) {
          v[off_of(blocks[k])] = static_cast<std::uint8_t>(counts[k]);
          most = std::max(most, counts[k]);
        }
        if (most < Page::kFar) {
          i = j;
          continue;
        }
      }
      for (; i < j; ++i) {
        std::uint8_t& e = v[off_of(blocks[i])];
        std::uint32_t c = counts[i];
        if (e != Page::kFar && c < Page::kFar) [[likely]] {
          e = static_cast<std::uint8_t>(c);
          continue;
        }
        if (e == Page::kFar) overflow_.erase(blocks[i]);
        if (c < Page::kFar) {
          e = static_cast<std::uint8_t>(c);
        } else {
          e = Page::kFar;
          overflow_[blocks[i]] = c;
        }
      }
    } else if (!p.d && (p.sparse.empty() || (p.sparse.back() >> Page::kCountBits) < off_of(blocks[i]))) {
      // Appended in order (a leaf of a tree read in key order); the form is settled once the
      // group is in, as page_set would have settled it entry by entry.
      std::uint32_t prev = 0;
      for (std::size_t k = i; k < j; ++k) {
        std::uint32_t off = off_of(blocks[k]), c = counts[k];
        if (k > i && off <= prev) {  // not ascending: the general path for the rest
          for (; k < j; ++k) page_set(p, blocks[k], off_of(blocks[k]), counts[k]);
          break;
        }
        prev = off;
        if (!c) continue;
        if (c >= Page::kSparseFar) overflow_[blocks[k]] = c;
        p.sparse.push_back(off << Page::kCountBits | std::min(c, Page::kSparseFar));
      }
      if (!p.d && p.sparse.size() > Page::kMaxSparse) densify(p, index << kPageShift);
      i = j;
    } else {
      for (; i < j; ++i) page_set(p, blocks[i], off_of(blocks[i]), counts[i]);
    }
  }
}

void RefCounts::set_bytes(std::uint64_t first, std::span<const std::uint8_t> counts) {
  for (std::size_t lo = 0; lo < counts.size(); lo += kPageBlocks) {
    std::size_t n = std::min<std::size_t>(counts.size() - lo, kPageBlocks);
    const std::uint8_t* v = counts.data() + lo;
    std::size_t nz = 0, big = 0;
    for (std::size_t k = 0; k < n; ++k) {
      nz += v[k] != 0;
      big += v[k] >= 3;
    }
    if (!nz) continue;
    std::uint64_t base = first + lo, index = base >> kPageShift;
    Page& p = page(index);
    if (p.d || !p.sparse.empty()) {  // counted already: block by block
      for (std::size_t k = 0; k < n; ++k)
        if (v[k]) page_set(p, base + k, static_cast<std::uint32_t>(k), v[k]);
      continue;
    }
    if (nz <= Page::kMaxSparse) {  // as set() would keep it
      p.sparse.reserve(nz);
      for (std::size_t k = 0; k < n; ++k)
        if (v[k]) p.sparse.push_back(static_cast<std::uint32_t>(k) << Page::kCountBits | v[k]);
      continue;
    }
    // Dense, as densify() decides.
    auto d = std::make_unique<Dense>();
    if (byte_pages_ || big > Page::kMaxSmallOverflow) {
      d->bytes.assign(kPageBlocks, 0);
      std::memcpy(d->bytes.data(), v, n);
    } else {
      d->bits.assign(Page::kDenseWords, 0);
      for (std::size_t k = 0; k < n; ++k) {
        std::uint32_t c = v[k];
        if (!c) continue;
        d->bits[k / 32] |= std::uint64_t{std::min<std::uint32_t>(c, 3)} << (2 * (k % 32));
        if (c >= 3) {
          d->ovf_off.push_back(static_cast<std::uint32_t>(k));
          d->ovf_cnt.push_back(c);
        }
      }
    }
    p.d = std::move(d);
    note_recent(index, &p);
  }
}

std::uint8_t* RefCounts::count_bytes(std::uint64_t b, bool create) {
  if (!overflow_.empty()) return nullptr;
  std::uint64_t index = b >> kPageShift;
  const Recent& r = recent_[index % kRecent];
  if (r.index == index && r.bytes) return r.bytes;
  Page& p = page(index);
  if (!p.d && p.sparse.empty() && create) {
    p.d = std::make_unique<Dense>();
    p.d->bytes.assign(kPageBlocks, 0);
    note_recent(index, &p);
  }
  return p.is_bytes() ? p.d->bytes.data() : nullptr;
}

std::size_t RefCounts::first_mismatch(std::uint64_t first, std::span<const std::uint32_t> got) const {
  // Blocks are compared 64 at a time with loops the compiler vectorises; a chunk that differs
  // (or holds a count kept elsewhere) is then looked at block by block.
  constexpr std::size_t kChunk = 64;
  std::size_t found = got.size();
  for_each_share(first, got.size(), [&](const Page* p, std::uint64_t b, std::uint32_t off,
                                        std::uint64_t i, std::uint32_t n) {
    const std::uint32_t* g = got.data() + i;
    auto slow = [&](std::size_t k, std::size_t e) -> std::size_t {  // [k, e): first mismatch or e
      if (!p) {
        for (; k < e; ++k)
          if (g[k]) return k;
        return e;
      }
      if (!p->d) {  // sparse: zero but where an entry is
        auto it = p->lower(static_cast<std::uint32_t>(off + k));
        for (; k < e; ++k) {
          auto o = static_cast<std::uint32_t>(off + k);
          std::uint32_t want = 0;
          if (it != p->sparse.end() && (*it >> Page::kCountBits) == o) {
            want = page_get(*p, b + k, o);
            ++it;
          }
          if (want != g[k]) return k;
        }
        return e;
      }
      for (; k < e; ++k)
        if (page_get(*p, b + k, static_cast<std::uint32_t>(off + k)) != g[k]) return k;
      return e;
    };
    auto share = [&]() -> std::size_t {  // the share's first mismatch, or n
      std::size_t k = 0;
      if (!p) {
        for (; k + kChunk <= n; k += kChunk) {
          std::uint32_t any = 0;
          for (std::size_t m = 0; m < kChunk; ++m) any |= g[k + m];
          if (any) return slow(k, k + kChunk);
        }
      } else if (p->is_bytes()) {
        const std::uint8_t* v = p->d->bytes.data() + off;
        for (; k + kChunk <= n; k += kChunk) {
          std::uint32_t diff = 0;
          for (std::size_t m = 0; m < kChunk; ++m)
            diff |= (g[k + m] ^ v[k + m]) | (v[k + m] == Page::kFar);
          if (diff)
            if (std::size_t at = slow(k, k + kChunk); at != k + kChunk) return at;
        }
      } else if (p->is_bits()) {
        for (; k + kChunk <= n; k += kChunk) {
          std::uint32_t diff = 0;
          for (std::size_t m = 0; m < kChunk; ++m) {
            auto o = static_cast<std::uint32_t>(off + k + m);
            auto c = static_cast<std::uint32_t>((p->d->bits[o / 32] >> (2 * (o % 32))) & 3);
            diff |= (g[k + m] ^ c) | (c == 3);
          }
          if (diff)
            if (std::size_t at = slow(k, k + kChunk); at != k + kChunk) return at;
        }
      }
      return slow(k, n);
    };
    std::size_t at = share();
    if (at != n) found = i + at;
    return at == n;
  });
  return found;
}

}  // namespace thinmeta::pdata
