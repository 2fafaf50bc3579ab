// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/paged_counts.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "persistent-data/endian.h"

namespace thinmeta::pdata {

namespace {
constexpr std::size_t kMaxSteps = 256;  // 2 KiB of steps; a dense page is 16 KiB
}

// Sparse: steps[i] = (offset, count) holds for [offset, next step's offset or page end);
// offsets ascend from 0. Dense: one saturating byte a block.
struct PagedCounts::Page {
  struct Step {
    std::uint32_t off;
    std::uint32_t count;
  };
  std::vector<Step> steps{Step{0, 0}};
  std::vector<std::uint8_t> dense;  // empty while sparse
  // The step that covered the end of the last run added: runs come mostly in ascending data
  // order, so the next one mostly starts in it or the one after (no binary search).
  std::size_t hint = 0;

  bool covers(std::size_t i, std::uint32_t off) const {
    return i < steps.size() && steps[i].off <= off &&
           (i + 1 == steps.size() || steps[i + 1].off > off);
  }
  // Index of the step that starts exactly at off (splitting the one covering it).
  std::size_t split(std::uint32_t off) {
    std::size_t i;
    if (covers(hint, off)) {
      i = hint;
    } else if (covers(hint + 1, off)) {
      i = hint + 1;
    } else {
      auto it = std::upper_bound(steps.begin(), steps.end(), off,
                                 [](std::uint32_t o, const Step& s) { return o < s.off; });
      i = static_cast<std::size_t>(it - steps.begin()) - 1;
    }
    if (steps[i].off == off) return i;
    steps.insert(steps.begin() + static_cast<std::ptrdiff_t>(i + 1), Step{off, steps[i].count});
    return i + 1;
  }
};

PagedCounts::PagedCounts() = default;
PagedCounts::~PagedCounts() = default;
PagedCounts::PagedCounts(PagedCounts&& o) noexcept
    : pages_(std::move(o.pages_)), big_(std::move(o.big_)), nonzero_(o.nonzero_),
      overflow_(o.overflow_), last_index_(o.last_index_), last_(o.last_),
      recent_(std::move(o.recent_)) {
  o.last_ = nullptr;  // the pages are this object's now
}
PagedCounts& PagedCounts::operator=(PagedCounts&& o) noexcept {
  pages_ = std::move(o.pages_);
  big_ = std::move(o.big_);
  nonzero_ = o.nonzero_;
  overflow_ = o.overflow_;
  last_index_ = o.last_index_;
  last_ = o.last_;
  recent_ = std::move(o.recent_);
  o.last_ = nullptr;
  return *this;
}

void PagedCounts::add(std::uint64_t begin, std::uint64_t len, std::uint32_t by) {
  while (len && by) {
    std::uint64_t page = begin >> kPageShift;
    auto off = static_cast<std::uint32_t>(begin & (kPageBlocks - 1));
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(len, kPageBlocks - off));
    add_in_page(page, off, n, by);
    begin += n;
    len -= n;
  }
}

void PagedCounts::add_in_page(std::uint64_t index, std::uint32_t off, std::uint32_t len,
                              std::uint32_t by) {
  if (index != last_index_ || !last_) {  // runs come in order: mostly the same page again
    if (!recent_) recent_ = std::make_unique<Recent[]>(kRecent);
    Recent& r = recent_[index % kRecent];
    if (!r.page || r.index != index) {
      std::unique_ptr<Page>& slot = pages_[index];
      if (!slot) slot = std::make_unique<Page>();
      r = Recent{index, slot.get()};
    }
    last_index_ = index;
    last_ = r.page;
  }
  Page& p = *last_;
  if (p.dense.empty()) {
    std::size_t first = p.split(off);
    std::size_t last = off + len < kPageBlocks ? p.split(off + len) : p.steps.size();
    for (std::size_t i = first; i < last; ++i) p.steps[i].count += by;
    // Merge equal neighbours around the changed range.
    std::size_t lo = first > 0 ? first - 1 : 0, hi = std::min(last + 1, p.steps.size());
    std::size_t out = lo + 1;
    for (std::size_t i = lo + 1; i < hi; ++i)
      if (p.steps[i].count != p.steps[out - 1].count) p.steps[out++] = p.steps[i];
    p.steps.erase(p.steps.begin() + static_cast<std::ptrdiff_t>(out),
                  p.steps.begin() + static_cast<std::ptrdiff_t>(hi));
    p.hint = out - 1;  // the step covering off + len (or the page's last step)
    if (p.steps.size() <= kMaxSteps) return;
    // Too many boundaries: one byte a block from now on.
    p.dense.assign(kPageBlocks, 0);
    for (std::size_t i = 0; i < p.steps.size(); ++i) {
      std::uint32_t end = i + 1 < p.steps.size() ? p.steps[i + 1].off : kPageBlocks;
      std::uint32_t c = p.steps[i].count;
      std::memset(p.dense.data() + p.steps[i].off, static_cast<int>(std::min<std::uint32_t>(c, 255)),
                  end - p.steps[i].off);
      if (c >= 255)
        for (std::uint32_t b = p.steps[i].off; b < end; ++b) big_[(index << kPageShift) + b] = c;
    }
    p.steps.clear();
    p.steps.shrink_to_fit();
    return;
  }
  // 8 blocks a step while their counts are below 128 and `by` too (each byte's sum stays
  // below 255: no carry into the next byte, no byte reaching the overflow mark).
  std::uint32_t b = off;
  const std::uint32_t end = off + len;
  if (by < 128) {
    const std::uint64_t step = by * 0x0101010101010101ull;
    for (; b + 8 <= end; b += 8) {
      std::uint64_t w = load_le64(p.dense.data() + b);
      if (w & 0x8080808080808080ull) break;
      store_le64(p.dense.data() + b, w + step);
    }
    // The last 1-7 blocks in one word too when it lies inside the page: only their bytes
    // are added to and looked at.
    if (b < end && end - b < 8 && b + 8 <= kPageBlocks) {
      const std::uint64_t mask = ~0ull >> (8 * (8 - (end - b)));
      std::uint64_t w = load_le64(p.dense.data() + b);
      if (!(w & mask & 0x8080808080808080ull)) {
        store_le64(p.dense.data() + b, w + (step & mask));
        return;
      }
    }
  }
  for (; b < end; ++b) {
    std::uint32_t c = p.dense[b];
    if (c + by < 255) {
      p.dense[b] = static_cast<std::uint8_t>(c + by);
      continue;
    }
    std::uint64_t block = (index << kPageShift) + b;
    std::uint32_t full = c == 255 ? big_[block] : c;
    big_[block] = full + by;
    p.dense[b] = 255;
  }
}

void PagedCounts::finish() {
  // The totals straight from the pages (a pass of for_each_run's calls cost as much as the
  // bitmaps' own pass); a dense 255 is a count of 255 or more, so at least 3.
  nonzero_ = overflow_ = 0;
  for (const auto& [index, page] : pages_) {
    const Page& p = *page;
    if (p.dense.empty()) {
      for (std::size_t i = 0; i < p.steps.size(); ++i) {
        std::uint32_t end = i + 1 < p.steps.size() ? p.steps[i + 1].off : kPageBlocks;
        std::uint32_t c = p.steps[i].count;
        if (c) nonzero_ += end - p.steps[i].off;
        if (c >= 3) overflow_ += end - p.steps[i].off;
      }
      continue;
    }
    // 8 counts a step: a byte's high bit after adding 0x7f (0x7d) to its low 7 bits, or'd
    // with the byte, is set iff it is at least 1 (3); no carry crosses a byte (127 + 127).
    // The marks are summed by a multiplication (the baseline x86-64 has no popcnt).
    constexpr std::uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full, kHigh = 0x8080808080808080ull;
    constexpr std::uint64_t kOnes = 0x0101010101010101ull;
    auto marks = [](std::uint64_t m) { return ((m >> 7) * kOnes) >> 56; };
    for (std::uint32_t b = 0; b < kPageBlocks; b += 8) {
      std::uint64_t w = load_le64(p.dense.data() + b);
      nonzero_ += marks((((w & kLow7) + kLow7) | w) & kHigh);
      overflow_ += marks((((w & kLow7) + 0x7D7D7D7D7D7D7D7Dull) | w) & kHigh);
    }
  }
}

void PagedCounts::for_each_run(const RunFn& fn) const {
  for (const auto& [index, page] : pages_) {
    std::uint64_t base = index << kPageShift;
    const Page& p = *page;
    if (p.dense.empty()) {
      for (std::size_t i = 0; i < p.steps.size(); ++i) {
        std::uint32_t end = i + 1 < p.steps.size() ? p.steps[i + 1].off : kPageBlocks;
        if (p.steps[i].count) fn(base + p.steps[i].off, end - p.steps[i].off, p.steps[i].count);
      }
      continue;
    }
    std::uint32_t b = 0;
    while (b < kPageBlocks) {
      std::uint8_t v = p.dense[b];
      if (v == 255) {
        fn(base + b, 1, big_.at(base + b));
        ++b;
        continue;
      }
      // The run's end, 8 bytes a step: the first byte of a word that differs from v.
      std::uint32_t e = b + 1;
      const std::uint64_t vv = v * 0x0101010101010101ull;
      for (;;) {
        if (e + 8 > kPageBlocks) {
          while (e < kPageBlocks && p.dense[e] == v) ++e;
          break;
        }
        if (std::uint64_t x = load_le64(p.dense.data() + e) ^ vv) {
          e += static_cast<std::uint32_t>(std::countr_zero(x)) / 8;
          break;
        }
        e += 8;
      }
      if (v) fn(base + b, e - b, v);
      b = e;
    }
  }
}

std::size_t PagedCounts::memory_bytes() const {
  std::size_t n = big_.size() * 32;
  for (const auto& [index, page] : pages_)
    n += sizeof(Page) + 48 + page->steps.capacity() * sizeof(Page::Step) + page->dense.capacity();
  return n;
}

}  // namespace thinmeta::pdata
