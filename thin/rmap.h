// SPDX-License-Identifier: GPL-3.0-or-later
// thin_rmap's logic (FORMAT.md §16): which virtual blocks of which devices map data blocks in
// a set of half-open regions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "thin/text_output.h"

namespace thinmeta::thin {

struct DataRegion {
  std::uint64_t begin = 0, end = 0;  // [begin, end)
};

// Data [data_begin, data_begin + len) is mapped by device ReverseRuns::dev(dev_index) at
// [thin_begin, ...). 24 bytes: a run is shorter than the 2^40 blocks a mapping can address, and
// devices are numbered in walk order (at most 2^24 of them, the kernel's device-id space).
struct ReverseRun {
  std::uint64_t data_begin = 0;
  std::uint64_t thin_begin = 0;
  std::uint64_t len : 40 = 0;
  std::uint64_t dev_index : 24 = 0;
};
inline constexpr std::size_t kMaxReverseDevices = std::size_t{1} << 24;

// The runs of a whole pool (millions), in an anonymous mapping grown with mremap (pages move,
// nothing is copied), in transparent huge pages where the kernel has them (a page fault per
// 2 MiB instead of per 4 KiB).
class ReverseRuns {
 public:
  ReverseRuns() = default;
  ReverseRuns(ReverseRuns&& o) noexcept
      : devs(std::move(o.devs)), p_(o.p_), n_(o.n_), cap_(o.cap_) {
    o.p_ = nullptr;
  }
  ReverseRuns& operator=(ReverseRuns&&) = delete;
  ReverseRuns(const ReverseRuns&) = delete;
  ~ReverseRuns();
  void push_back(const ReverseRun& r) {
    if (n_ == cap_) grow();
    p_[n_++] = r;
  }
  std::size_t size() const { return n_; }
  ReverseRun* begin() { return p_; }
  ReverseRun* end() { return p_ + n_; }
  const ReverseRun* begin() const { return p_; }
  const ReverseRun* end() const { return p_ + n_; }
  std::uint64_t dev(const ReverseRun& r) const { return devs[r.dev_index]; }

  std::vector<std::uint64_t> devs;  // device ids by dev_index

 private:
  void grow();
  ReverseRun* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

// Walks every device's mappings in (device, virtual block) order, keeps those whose data block
// lies in a region, joins consecutive ones (same device, virtual and data blocks both +1) and
// returns them sorted by data block, then device. Damage is an Errc::kDamage error.
Result<ReverseRuns> reverse_map(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                std::vector<DataRegion> regions);

// thin_rmap's output: "data B..E -> thin(DEV) V..W" a run, ends exclusive (FORMAT.md §16).
void write_reverse_runs(const ReverseRuns& runs, TextOutput& out);

}  // namespace thinmeta::thin
