// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/ref_counts.h"

#include <algorithm>

namespace thinmeta::pdata {

RefCounts::~RefCounts() = default;
RefCounts::RefCounts(RefCounts&&) noexcept = default;
RefCounts& RefCounts::operator=(RefCounts&&) noexcept = default;

RefCounts::Page& RefCounts::page(std::uint64_t index) {
  auto& p = pages_[index];
  if (!p) p = std::make_unique<Page>();
  return *p;
}

const RefCounts::Page* RefCounts::find_page(std::uint64_t index) const {
  auto it = pages_.find(index);
  return it == pages_.end() ? nullptr : it->second.get();
}

std::uint32_t RefCounts::ext_get(const Page& p, std::uint64_t b, std::uint32_t off) const {
  if (!p.wide.empty())
    return p.wide[off] != Page::kWideFar ? p.wide[off] + 3u : overflow_.at(b);
  auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
  return p.ovf_cnt[static_cast<std::size_t>(it - p.ovf_off.begin())];
}

void RefCounts::ext_set(Page& p, std::uint64_t b, std::uint32_t off, std::uint32_t count) {
  if (p.wide.empty()) {
    auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
    auto i = it - p.ovf_off.begin();
    if (it != p.ovf_off.end() && *it == off) {
      p.ovf_cnt[static_cast<std::size_t>(i)] = count;
      return;
    }
    if (p.ovf_off.size() < Page::kMaxSmallOverflow) {
      p.ovf_off.insert(it, off);
      p.ovf_cnt.insert(p.ovf_cnt.begin() + i, count);
      return;
    }
    // Many counts >= 3 in this page: a byte a block from now on.
    p.wide.assign(kPageBlocks, 0);
    std::uint64_t base = b - off;
    for (std::size_t k = 0; k < p.ovf_off.size(); ++k) {
      std::uint32_t c = p.ovf_cnt[k];
      p.wide[p.ovf_off[k]] = c - 3 < Page::kWideFar ? static_cast<std::uint8_t>(c - 3) : Page::kWideFar;
      if (c - 3 >= Page::kWideFar) overflow_[base + p.ovf_off[k]] = c;
    }
    p.ovf_off.clear();
    p.ovf_off.shrink_to_fit();
    p.ovf_cnt.clear();
    p.ovf_cnt.shrink_to_fit();
  }
  if (p.wide[off] == Page::kWideFar) overflow_.erase(b);
  if (count - 3 < Page::kWideFar) {
    p.wide[off] = static_cast<std::uint8_t>(count - 3);
  } else {
    p.wide[off] = Page::kWideFar;
    overflow_[b] = count;
  }
}

void RefCounts::ext_erase(Page& p, std::uint64_t b, std::uint32_t off) {
  if (!p.wide.empty()) {
    if (p.wide[off] == Page::kWideFar) overflow_.erase(b);
    p.wide[off] = 0;
    return;
  }
  auto it = std::lower_bound(p.ovf_off.begin(), p.ovf_off.end(), off);
  if (it == p.ovf_off.end() || *it != off) return;
  p.ovf_cnt.erase(p.ovf_cnt.begin() + (it - p.ovf_off.begin()));
  p.ovf_off.erase(it);
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
    if (p->dense.empty()) {  // sparse entries are all non-zero
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), lo << 2);
      if (it != p->sparse.end() && (*it >> 2) < hi) return true;
      continue;
    }
    for (std::uint32_t o = lo; o < hi; ++o)
      if (p->get(o)) return true;
  }
  return false;
}

std::uint32_t RefCounts::get(std::uint64_t b) const {
  const Page* p = find_page(b >> kPageShift);
  if (!p) return 0;
  auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
  unsigned small = p->get(off);
  if (small < 3) return small;
  return ext_get(*p, b, off);
}

void RefCounts::get_range(std::uint64_t begin, std::span<std::uint32_t> out) const {
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t b = begin + i;
    const Page* p = find_page(b >> kPageShift);
    auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
    std::size_t n = std::min<std::size_t>(out.size() - i, kPageBlocks - off);
    if (!p) {
      std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(i), n, 0u);
    } else if (p->dense.empty()) {  // sparse: zeros, then the few entries in range
      std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(i), n, 0u);
      auto it = std::lower_bound(p->sparse.begin(), p->sparse.end(), off << 2);
      for (; it != p->sparse.end() && (*it >> 2) < off + n; ++it) {
        std::uint32_t o = *it >> 2, small = *it & 3;
        out[i + (o - off)] = small < 3 ? small : ext_get(*p, b + (o - off), o);
      }
    } else {
      for (std::size_t k = 0; k < n; ++k) {
        auto o = static_cast<std::uint32_t>(off + k);
        unsigned small = p->get(o);
        out[i + k] = small < 3 ? small : ext_get(*p, b + k, o);
      }
    }
    i += n;
  }
}

void RefCounts::set(std::uint64_t b, std::uint32_t count) {
  Page& p = page(b >> kPageShift);
  auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
  if (count >= 3)
    ext_set(p, b, off, count);
  else if (p.get(off) == 3)
    ext_erase(p, b, off);
  p.set(off, std::min<std::uint32_t>(count, 3));
}

void RefCounts::inc(std::uint64_t b, std::uint32_t by) {
  if (!by) return;
  Page& p = page(b >> kPageShift);
  auto off = static_cast<std::uint32_t>(b & (kPageBlocks - 1));
  unsigned small = p.get(off);
  if (small == 3) {
    ext_set(p, b, off, ext_get(p, b, off) + by);
    return;
  }
  std::uint32_t n = small + by;
  if (n >= 3) {
    ext_set(p, b, off, n);
    p.set(off, 3);
  } else {
    p.set(off, n);
  }
}

void RefCounts::inc_range(std::uint64_t b, std::uint64_t len, std::uint32_t by) {
  for (std::uint64_t i = 0; i < len; ++i) inc(b + i, by);
}

std::uint64_t RefCounts::nr_overflow() const {
  // A block's count is >= 3 exactly when its 2-bit entry is 3.
  std::uint64_t n = 0;
  for (const auto& [idx, p] : pages_) {
    if (p->dense.empty()) {
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
      unsigned c = p.get(off + i);
      if (c < cap) p.set(off + i, static_cast<unsigned>(std::min<std::uint64_t>(c + by, cap)));
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
    if (p) {
      for (std::uint32_t i = 0; i < n; ++i) found += p->get(off + i) == count;
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
    if (p->dense.empty()) {
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
    auto emit = [&](std::uint32_t off, unsigned small) {
      std::uint64_t b = base + off;
      fn(b, small < 3 ? small : ext_get(p, b, off));
    };
    if (p.dense.empty()) {
      for (std::uint32_t e : p.sparse) emit(e >> 2, e & 3);
    } else {
      for (std::size_t w = 0; w < p.dense.size(); ++w) {
        std::uint64_t word = p.dense[w];
        while (word) {
          unsigned bit = static_cast<unsigned>(__builtin_ctzll(word)) & ~1u;
          emit(static_cast<std::uint32_t>(w * 32 + bit / 2),
               static_cast<unsigned>((word >> bit) & 3));
          word &= ~(3ull << bit);
        }
      }
    }
  }
}

std::size_t RefCounts::memory_bytes() const {
  std::size_t n = pages_.size() * 48 + overflow_.size() * 40;
  for (const auto& [i, p] : pages_) n += p->bytes();
  return n;
}

}  // namespace thinmeta::pdata
