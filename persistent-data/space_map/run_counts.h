// SPDX-License-Identifier: GPL-3.0-or-later
// Reference counts given as runs of blocks (a mapping run adds one to each of its data blocks),
// kept as sorted run boundaries: 16 bytes per run however long it is or however many runs
// overlap, where a per-block map would hold every shared block. The count source the restore
// writer hands to the space-map writers.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace thinmeta::pdata {

// What the space-map writers read: every non-zero count in ascending block order.
class CountSource {
 public:
  virtual ~CountSource() = default;
  virtual std::uint64_t nr_nonzero() const = 0;
  virtual std::uint64_t nr_overflow() const = 0;  // blocks with a count >= 3
  // fn(begin, len, count) for runs of blocks that share a non-zero count, ascending.
  using RunFn = std::function<void(std::uint64_t, std::uint64_t, std::uint32_t)>;
  virtual void for_each_run(const RunFn& fn) const = 0;
};

class RunCounts final : public CountSource {
 public:
  // Adds `by` to each of blocks [begin, begin + len). Call finish() before reading.
  void add(std::uint64_t begin, std::uint64_t len, std::uint32_t by = 1);
  void finish();
  std::uint64_t nr_nonzero() const override { return nonzero_; }
  std::uint64_t nr_overflow() const override { return overflow_; }
  void for_each_run(const RunFn& fn) const override;
  std::size_t memory_bytes() const { return (begins_.capacity() + ends_.capacity()) * 8; }

 private:
  std::vector<std::uint64_t> begins_, ends_;  // one pair per unit added
  std::uint64_t nonzero_ = 0, overflow_ = 0;
};

}  // namespace thinmeta::pdata
