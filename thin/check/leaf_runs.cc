// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/check/leaf_runs.h"

#include <algorithm>

namespace thinmeta::thin::check_detail {
namespace {

// Every entry: runs, beyond and newer counted one by one (leaves with something to report).
void decode_exact(const std::uint8_t* values, const pdata::NodeView& n, std::uint32_t nr,
                  std::uint64_t nr_data, std::uint32_t pool_time, LeafRuns& out) {
  std::uint32_t r = 0;
  std::uint64_t run_begin = 0, run_len = 0;
  out.beyond = out.newer = 0;
  for (std::uint32_t i = 0; i < nr; ++i) {
    BlockTime bt = unpack_block_time(pdata::load_le64(values + 8ull * i));
    if (bt.data_block >= nr_data) {
      if (!out.beyond++) out.first_beyond_key = n.key(i), out.first_beyond = bt;
    } else if (run_len && bt.data_block == run_begin + run_len) {
      ++run_len;
    } else {
      if (run_len) out.runs[r++] = {run_begin, run_len};
      run_begin = bt.data_block;
      run_len = 1;
    }
    if (bt.time > pool_time && !out.newer++) out.first_newer_key = n.key(i), out.first_newer = bt;
  }
  if (run_len) out.runs[r++] = {run_begin, run_len};
  out.nr_runs = r;
}

}  // namespace

void decode_leaf_runs(const pdata::NodeView& n, std::uint64_t nr_data, std::uint32_t pool_time,
                      LeafRuns& out) {
  std::uint32_t nr = std::min(n.nr_entries(), LeafRuns::kMaxEntries);
  const std::uint8_t* values = n.value(0);
  // The common case first: runs only, the largest time noted on the way (no branch an entry
  // but the run's end; a run's len holds its first entry's index until the end); the largest
  // block is the largest run end. A leaf with anything to report is decoded again, exactly.
  std::uint64_t next = ~0ull, max_time = 0;
  std::uint32_t r = 0;
  for (std::uint32_t i = 0; i < nr; ++i) {
    std::uint64_t v = pdata::load_le64(values + 8ull * i);
    std::uint64_t d = v >> 24;
    max_time = std::max(max_time, v & kMaxTime);
    if (d != next) out.runs[r++] = {d, i};
    next = d + 1;
  }
  std::uint64_t max_block = 0;
  for (std::uint32_t k = 0; k < r; ++k) {
    std::uint64_t end = k + 1 < r ? out.runs[k + 1].len : nr;
    out.runs[k].len = end - out.runs[k].len;
    max_block = std::max(max_block, out.runs[k].begin + out.runs[k].len - 1);
  }
  out.nr_runs = r;
  out.beyond = out.newer = 0;
  if ((r && max_block >= nr_data) || max_time > pool_time)
    decode_exact(values, n, nr, nr_data, pool_time, out);
}

}  // namespace thinmeta::thin::check_detail
