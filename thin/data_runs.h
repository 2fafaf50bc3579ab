// SPDX-License-Identifier: GPL-3.0-or-later
// The runs of consecutive data blocks in a mapping leaf (FORMAT.md §6.1: each value is
// data_block << 24 | time, little-endian): found by marking where each run ends, a bit per
// value, four values a step where the CPU has AVX2 (persistent-data/cpu_features.h). Serves
// thin_ls, thin_rmap and thin_check's leaf decode (thin/check/leaf_runs.h); times are ignored
// but for their maximum, which thin_check asks for.
#pragma once

#include <algorithm>
#include <cstdint>

#include "persistent-data/endian.h"

namespace thinmeta::thin {

inline constexpr std::uint32_t kRunEndChunk = 256;  // values a call of data_run_ends marks

// Bit i of ends[i / 64] (i < n <= kRunEndChunk) is set when value i ends a run: it is the last
// one, or the next value's data block is not its own plus one. Writes (n + 63) / 64 words.
// The max_time forms also give the largest time of the n values (0 when n is 0), taken on the
// same pass (thin_check's leaf decode; thin_ls and thin_rmap ignore times).
void data_run_ends(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends);
void data_run_ends(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends,
                   std::uint32_t& max_time);
// The same without AVX2 (what data_run_ends does on CPUs without it; for tests).
void data_run_ends_portable(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends);
void data_run_ends_portable(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends,
                            std::uint32_t& max_time);

// For a leaf's keys and values (n <= kRunEndChunk): when every value's data block lies in
// [begin, begin + len), marks in ends (as data_run_ends does) where runs end that need both
// the keys and the data blocks +1 from one value to the next, and returns true. Returns false
// when a data block lies outside (ends then means nothing), and on CPUs without AVX2 (callers
// keep their one-at-a-time path there).
bool mapping_run_ends(const std::uint8_t* keys, const std::uint8_t* values, std::uint32_t n,
                      std::uint64_t begin, std::uint64_t len, std::uint64_t* ends);
// The same one value at a time, on any CPU (for tests).
bool mapping_run_ends_portable(const std::uint8_t* keys, const std::uint8_t* values, std::uint32_t n,
                               std::uint64_t begin, std::uint64_t len, std::uint64_t* ends);

// Calls fn(first, len) for each run of values [first, first + len) whose data blocks are
// consecutive, in order, over n values (any n).
template <typename Fn>
void for_each_data_run(const std::uint8_t* values, std::uint32_t n, Fn&& fn) {
  std::uint64_t ends[kRunEndChunk / 64];
  std::uint32_t start = 0;
  for (std::uint32_t c = 0; c < n; c += kRunEndChunk) {
    const std::uint32_t m = std::min(kRunEndChunk, n - c);
    data_run_ends(values + 8ull * c, m, ends);
    if (c + m < n) {  // a chunk's last value ends a run only if the next chunk does not go on
      std::uint64_t last = pdata::load_le64(values + 8ull * (c + m - 1)) >> 24;
      if ((pdata::load_le64(values + 8ull * (c + m)) >> 24) == last + 1)
        ends[(m - 1) / 64] &= ~(1ull << ((m - 1) % 64));
    }
    for (std::uint32_t w = 0; w * 64 < m; ++w)
      for (std::uint64_t x = ends[w]; x; x &= x - 1) {
        std::uint32_t e = c + w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(x));
        fn(start, e + 1 - start);
        start = e + 1;
      }
  }
}

}  // namespace thinmeta::thin
