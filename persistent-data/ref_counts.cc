// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/ref_counts.h"

#include <algorithm>

namespace thinmeta::pdata {

RefCounts::~RefCounts() = default;

RefCounts::RefCounts(RefCounts&& o) noexcept
    : nr_blocks_(o.nr_blocks_), pages_(std::move(o.pages_)), overflow_(std::move(o.overflow_)),
      last_index_(o.last_index_), last_(o.last_) {
  o.pages_.clear();
  o.overflow_.clear();
  o.last_index_ = ~0ull;
  o.last_ = nullptr;
}

RefCounts& RefCounts::operator=(RefCounts&& o) noexcept {
  if (this == &o) return *this;
  nr_blocks_ = o.nr_blocks_;
  pages_ = std::move(o.pages_);
  overflow_ = std::move(o.overflow_);
  last_index_ = o.last_index_;
  last_ = o.last_;
  o.pages_.clear();
  o.overflow_.clear();
  o.last_index_ = ~0ull;
  o.last_ = nullptr;
  return *this;
}

RefCounts::Page& RefCounts::page(std::uint64_t index) {
  if (index == last_index_) return *last_;
  auto& p = pages_[index];
  if (!p) p = std::make_unique<Page>();
  last_index_ = index;
  last_ = p.get();
  return *p;
}

const RefCounts::Page* RefCounts::find_page(std::uint64_t index) const {
  if (index == last_index_) return last_;
  auto it = pages_.find(index);
  if (it == pages_.end()) return nullptr;
  last_index_ = index;
  last_ = it->second.get();
  return last_;
}

std::uint32_t RefCounts::page_get(const Page& p, std::uint64_t b, std::uint32_t off) const {
  if (!p.bytes.empty()) {
    std::uint8_t v = p.bytes[off];
    return v != Page::kFar ? v : overflow_.at(b);
  }
  unsigned small = p.get2(off);
  if (small < 3) return small;
  auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
  return p.ovf_cnt[static_cast<std::size_t>(it - p.ovf_off.begin())];
}

void RefCounts::to_bytes(Page& p, std::uint64_t base) {
  std::vector<std::uint8_t> bytes(kPageBlocks, 0);
  auto put = [&](std::uint32_t off, unsigned small) { bytes[off] = static_cast<std::uint8_t>(small); };
  if (p.dense.empty()) {
    for (std::uint32_t e : p.sparse) put(e >> 2, e & 3);
  } else {
    for (std::size_t w = 0; w < p.dense.size(); ++w) {
      std::uint64_t word = p.dense[w];
      std::uint8_t* out = bytes.data() + w * 32;
      for (unsigned k = 0; k < 32; ++k) out[k] = static_cast<std::uint8_t>((word >> (2 * k)) & 3);
    }
  }
  for (std::size_t k = 0; k < p.ovf_off.size(); ++k) {
    std::uint32_t c = p.ovf_cnt[k];
    bytes[p.ovf_off[k]] = c < Page::kFar ? static_cast<std::uint8_t>(c) : Page::kFar;
    if (c >= Page::kFar) overflow_[base + p.ovf_off[k]] = c;
  }
  p = Page{};
  p.bytes = std::move(bytes);
}

void RefCounts::page_set(Page& p, std::uint64_t b, std::uint32_t off, std::uint32_t count) {
  if (p.bytes.empty()) {
    unsigned old = p.get2(off);
    if (count < 3) {
      if (old == 3) {
        auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
        p.ovf_cnt.erase(p.ovf_cnt.begin() + (it - p.ovf_off.begin()));
        p.ovf_off.erase(it);
      }
      p.set2(off, count);
      return;
    }
    auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
    auto i = static_cast<std::size_t>(it - p.ovf_off.begin());
    if (old == 3) {
      p.ovf_cnt[i] = count;
      return;
    }
    if (p.ovf_off.size() < Page::kMaxSmallOverflow) {
      p.ovf_off.insert(it, off);
      p.ovf_cnt.insert(p.ovf_cnt.begin() + static_cast<std::ptrdiff_t>(i), count);
      p.set2(off, 3);
      return;
    }
    // Many counts >= 3 in this page: a byte a block from now on.
    to_bytes(p, b - off);
  }
  std::uint8_t& v = p.bytes[off];
  if (v == Page::kFar) overflow_.erase(b);
  if (count < Page::kFar) {
    v = static_cast<std::uint8_t>(count);
  } else {
    v = Page::kFar;
    overflow_[b] = count;
  }
}

bool RefCounts::any_nonzero(std::uint64_t b, std::uint64_t len) const {
  if (!len) return false;
  std::uint64_t last = b + len - 1;
  for (std::uint64_t pg = b >> kPageShift; pg <= last >> kPageShift; ++pg) {
    const Page* p = find_page(pg);
    if (!p) continue;
    auto lo = static_cast<std::uint32_t>(pg == b >> kPageShift ? b & (kPageBlocks - 1) : 0);
    auto hi = static_cast<std::uint32_t>(pg == last >> kPageShift ? (last & (kPageBlocks - 1)) + 1
                                                                   : kPageBlocks);
    if (!p->bytes.empty()) {
      for (std::uint32_t o = lo; o < hi; ++o)
        if (p->bytes[o]) return true;
    } else if (p->dense.empty()) {  // sparse entries are all non-zero
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), lo << 2);
      if (it != p->sparse.end() && (*it >> 2) < hi) return true;
    } else {
      for (std::uint32_t o = lo; o < hi; ++o)
        if (p->get2(o)) return true;
    }
  }
  return false;
}

std::uint32_t RefCounts::get(std::uint64_t b) const {
  const Page* p = find_page(b >> kPageShift);
  if (!p) return 0;
  return page_get(*p, b, static_cast<std::uint32_t>(b & (kPageBlocks - 1)));
}

void RefCounts::get_range(std::uint64_t begin, std::span<std::uint32_t> out) const {
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t b = begin + i;
    const Page* p = find_page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    std::size_t n = std::min<std::size_t>(out.size() - i, kPageBlocks - off);
    std::uint32_t* o = out.data() + i;
    if (!p) {
      std::fill_n(o, n, 0u);
    } else if (!p->bytes.empty()) {
      const std::uint8_t* v = p->bytes.data() + off;
      for (std::size_t k = 0; k < n; ++k) o[k] = v[k];
      for (std::size_t k = 0; k < n; ++k)
        if (v[k] == Page::kFar) o[k] = overflow_.at(b + k);
    } else if (p->dense.empty()) {  // sparse: zeros, then the few entries in range
      std::fill_n(o, n, 0u);
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), off << 2);
      for (; it != p->sparse.end() && (*it >> 2) < off + n; ++it) {
        std::uint32_t at = *it >> 2;
        o[at - off] = page_get(*p, b + (at - off), at);
      }
    } else {  // two bits: a word at a time, then the few counts >= 3
      bool any3 = false;
      for (std::size_t k = 0; k < n;) {
        auto at = static_cast<std::uint32_t>(off + k);
        std::uint64_t word = p->dense[at / 32] >> (2 * (at % 32));
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
    i += n;
  }
}

void RefCounts::set(std::uint64_t b, std::uint32_t count) {
  page_set(page(b >> kPageShift), b, static_cast<std::uint32_t>(b & (kPageBlocks - 1)), count);
}

void RefCounts::inc(std::uint64_t b, std::uint32_t by) {
  if (!by) return;
  Page& p = page(b >> kPageShift);
  auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
  if (!p.bytes.empty() && by < Page::kFar) {
    std::uint8_t& v = p.bytes[off];
    if (v < Page::kFar - by) {
      v = static_cast<std::uint8_t>(v + by);
      return;
    }
  }
  page_set(p, b, off, page_get(p, b, off) + by);
}

void RefCounts::inc_range(std::uint64_t b, std::uint64_t len, std::uint32_t by) {
  if (!by) return;
  while (len) {
    Page& p = page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len, kPageBlocks - off));
    std::uint32_t k = 0;
    while (k < n) {
      // Tight loops while the page's form allows an in-place add; one general step otherwise.
      if (!p.bytes.empty() && by < Page::kFar) {
        std::uint8_t* v = p.bytes.data() + off;
        const auto lim = static_cast<std::uint8_t>(Page::kFar - by);
        while (k < n && v[k] < lim) v[k] = static_cast<std::uint8_t>(v[k] + by), ++k;
      } else if (!p.dense.empty() && by < 3) {
        // A word (32 entries) at a time: m has the low bit of each entry in range; the add
        // is safe when no entry would reach 3 (by 1: none >= 2; by 2: all 0).
        constexpr std::uint64_t kLow = 0x5555555555555555ull;
        while (k < n) {
          std::uint32_t o = off + k;
          unsigned first = o % 32;
          unsigned cnt = std::min<std::uint32_t>(32 - first, n - k);
          std::uint64_t m = (cnt == 32 ? kLow : ((1ull << (2 * cnt)) - 1) & kLow) << (2 * first);
          std::uint64_t& w = p.dense[o / 32];
          std::uint64_t fail = (by == 1 ? (w >> 1) : (w | (w >> 1))) & m;
          if (fail) {  // add up to the first entry that would overflow, then the slow step
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
      page_set(p, b + k, off + k, page_get(p, b + k, off + k) + by);
      ++k;
    }
    b += n;
    len -= n;
  }
}

std::uint64_t RefCounts::nr_overflow() const {
  // A block's count is >= 3 exactly when its 2-bit entry is 3.
  std::uint64_t n = 0;
  for (const auto& [idx, p] : pages_) {
    if (!p->bytes.empty()) {
      for (std::uint8_t v : p->bytes) n += v >= 3;
    } else if (p->dense.empty()) {
      for (std::uint32_t e : p->sparse) n += (e & 3) == 3;
    } else {
      for (std::uint64_t w : p->dense)
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
      if (!p.bytes.empty()) {
        std::uint8_t& v = p.bytes[off + i];
        if (v < cap) v = static_cast<std::uint8_t>(std::min<std::uint64_t>(v + by, cap));
        continue;
      }
      unsigned c = p.get2(off + i);
      if (c < cap) p.set2(off + i, static_cast<unsigned>(std::min<std::uint64_t>(c + by, cap)));
    }
    b += n;
    len -= n;
  }
}

std::uint64_t RefCounts::count_equal(std::uint64_t b, std::uint64_t len,
                                     std::uint32_t count) const {
  std::uint64_t found = 0;
  while (len) {
    const Page* p = find_page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    std::uint64_t n = std::min<std::uint64_t>(len, kPageBlocks - off);
    if (p && !p->bytes.empty()) {
      for (std::uint32_t i = 0; i < n; ++i) found += p->bytes[off + i] == count;
    } else if (p) {
      for (std::uint32_t i = 0; i < n; ++i) found += p->get2(off + i) == count;
    } else if (count == 0) {
      found += n;
    }
    b += n;
    len -= n;
  }
  return found;
}

std::uint64_t RefCounts::nr_nonzero() const {
  std::uint64_t n = 0;
  for (const auto& [idx, p] : pages_) {
    if (!p->bytes.empty()) {
      for (std::uint8_t v : p->bytes) n += v != 0;
    } else if (p->dense.empty()) {
      n += p->sparse.size();
    } else {
      for (std::uint64_t w : p->dense) {
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
    const Page& p = *pages_.at(i);
    std::uint64_t base = i << kPageShift;
    auto emit = [&](std::uint32_t off) { fn(base + off, page_get(p, base + off, off)); };
    if (!p.bytes.empty()) {
      for (std::uint32_t off = 0; off < kPageBlocks; ++off)
        if (p.bytes[off]) emit(off);
    } else if (p.dense.empty()) {
      for (std::uint32_t e : p.sparse) emit(e >> 2);
    } else {
      for (std::size_t w = 0; w < p.dense.size(); ++w) {
        std::uint64_t word = p.dense[w];
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
  std::size_t n = pages_.size() * 48 + overflow_.size() * 40;
  for (const auto& [i, p] : pages_) n += p->bytes_used();
  return n;
}

}  // namespace thinmeta::pdata
