// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/run_counts.h"

#include <algorithm>

namespace thinmeta::pdata {

void RunCounts::add(std::uint64_t begin, std::uint64_t len, std::uint32_t by) {
  if (!len) return;
  for (std::uint32_t i = 0; i < by; ++i) {
    begins_.push_back(begin);
    ends_.push_back(begin + len);
  }
}

void RunCounts::finish() {
  std::sort(begins_.begin(), begins_.end());
  std::sort(ends_.begin(), ends_.end());
  begins_.shrink_to_fit();
  ends_.shrink_to_fit();
  nonzero_ = overflow_ = 0;
  for_each_run([&](std::uint64_t, std::uint64_t len, std::uint32_t c) {
    nonzero_ += len;
    if (c >= 3) overflow_ += len;
  });
}

// A sweep over the boundaries: between two consecutive boundaries the count is constant.
void RunCounts::for_each_run(const RunFn& fn) const {
  std::size_t i = 0, j = 0;
  std::uint64_t count = 0;
  while (j < ends_.size()) {
    std::uint64_t pos = i < begins_.size() ? std::min(begins_[i], ends_[j]) : ends_[j];
    while (i < begins_.size() && begins_[i] == pos) ++count, ++i;
    while (j < ends_.size() && ends_[j] == pos) --count, ++j;
    if (!count) continue;
    std::uint64_t next = i < begins_.size() ? std::min(begins_[i], ends_[j]) : ends_[j];
    fn(pos, next - pos, static_cast<std::uint32_t>(count));
  }
}

}  // namespace thinmeta::pdata
