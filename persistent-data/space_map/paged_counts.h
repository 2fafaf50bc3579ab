// SPDX-License-Identifier: GPL-3.0-or-later
// Reference counts added as runs (a mapping run adds one to each of its data blocks), kept in
// pages of 16384 blocks: a page is a short step function while few boundaries fall in it and
// turns into one byte a block (counts >= 255 in an overflow map) when it would not be short.
// Memory follows the blocks used, at most ~1 byte a used block, however many runs overlap:
// the count source of thin_restore, which must stay below the reference's footprint.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "persistent-data/space_map/run_counts.h"

namespace thinmeta::pdata {

class PagedCounts final : public CountSource {
 public:
  static constexpr unsigned kPageShift = 14;
  static constexpr std::uint32_t kPageBlocks = 1u << kPageShift;

  PagedCounts();
  ~PagedCounts() override;
  PagedCounts(PagedCounts&&) noexcept;
  PagedCounts& operator=(PagedCounts&&) noexcept;

  // Adds `by` to each of blocks [begin, begin + len). Call finish() before reading.
  void add(std::uint64_t begin, std::uint64_t len, std::uint32_t by = 1);
  void finish();
  std::uint64_t nr_nonzero() const override { return nonzero_; }
  std::uint64_t nr_overflow() const override { return overflow_; }
  void for_each_run(const RunFn& fn) const override;
  std::size_t memory_bytes() const;

 private:
  struct Page;
  void add_in_page(std::uint64_t page, std::uint32_t off, std::uint32_t len, std::uint32_t by);

  std::map<std::uint64_t, std::unique_ptr<Page>> pages_;
  std::unordered_map<std::uint64_t, std::uint32_t> big_;  // full counts of dense bytes at 255
  std::uint64_t nonzero_ = 0, overflow_ = 0;
  std::uint64_t last_index_ = 0;  // the page last added to (pages never move: unique_ptr)
  Page* last_ = nullptr;
  // Pages added to lately, by index % kRecent (runs of a fragmented pool jump between
  // pages: a map lookup at nearly every run otherwise). page == nullptr: empty slot.
  struct Recent {
    std::uint64_t index = 0;
    Page* page = nullptr;
  };
  static constexpr std::size_t kRecent = 256;
  std::unique_ptr<Recent[]> recent_;
};

}  // namespace thinmeta::pdata
