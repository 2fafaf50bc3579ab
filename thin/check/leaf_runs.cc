// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/check/leaf_runs.h"

#include <algorithm>

#include "thin/data_runs.h"

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
                      LeafRuns& out, bool portable) {
  std::uint32_t nr = std::min(n.nr_entries(), LeafRuns::kMaxEntries);
  const std::uint8_t* values = n.value(0);
  // The common case first: runs only, from the marks of where runs end (AVX2 where the CPU
  // has it), the largest time taken on the same pass; the largest block is the largest run
  // end. A leaf with anything to report is decoded again, exactly.
  static_assert(LeafRuns::kMaxEntries <= kRunEndChunk);
  std::uint64_t ends[kRunEndChunk / 64];
  std::uint32_t max_time = 0;
  if (portable)
    data_run_ends_portable(values, nr, ends, max_time);
  else
    data_run_ends(values, nr, ends, max_time);
  std::uint64_t max_block = 0;
  std::uint32_t r = 0, start = 0;
  for (std::uint32_t w = 0; w * 64 < nr; ++w)
    for (std::uint64_t x = ends[w]; x; x &= x - 1) {
      const std::uint32_t e = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(x));
      const std::uint64_t begin = pdata::load_le64(values + 8ull * start) >> 24;
      out.runs[r++] = {begin, e + 1 - start};
      max_block = std::max(max_block, begin + (e - start));
      start = e + 1;
    }
  out.nr_runs = r;
  out.beyond = out.newer = 0;
  if ((r && max_block >= nr_data) || max_time > pool_time)
    decode_exact(values, n, nr, nr_data, pool_time, out);
}

}  // namespace thinmeta::thin::check_detail
