// SPDX-License-Identifier: GPL-3.0-or-later
// Extends a run of mappings over a mapping leaf's entries four at a time (FORMAT.md §6.1:
// little-endian keys, values data_block << 24 | time, compared packed: the time must stay).
// thin_dump's run joining (RunCoalescer::add_leaf). thin_rmap has no such step: its whole-leaf
// run-end marks (thin/data_runs.h) serve where one would gain.
#pragma once

#include <cstdint>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "persistent-data/endian.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

// A run whose next mapping would be (key, data, time) goes on over entries i.. of a leaf of
// nr entries while each entry's key and data block are one more than the last's and its time
// is `time`. Takes whole steps of four while all four go on; returns the first entry not taken
// (i when none): the caller looks at it one at a time. Takes nothing where the run's data
// blocks could pass 2^40 - 1, the largest a value holds (a packed comparison would wrap
// there). The portable loop does the same one entry at a time (on CPUs without SSE2; tests
// compare the two).
inline std::uint32_t extend_run4_portable(const std::uint8_t* keys, const std::uint8_t* vals,
                                          std::uint32_t i, std::uint32_t nr, std::uint64_t key,
                                          std::uint64_t data, std::uint32_t time) {
  if (i + 4 > nr || data > kMaxDataBlock - 3 - (nr - i)) return i;
  std::uint32_t k = i;
  for (; k + 4 <= nr; k += 4) {
    bool all = true;
    for (std::uint32_t j = 0; j < 4; ++j) {
      const BlockTime bt = unpack_block_time(pdata::load_le64(vals + 8ull * (k + j)));
      all &= pdata::load_le64(keys + 8ull * (k + j)) == key + (k - i) + j &&
             bt.data_block == data + (k - i) + j && bt.time == (time & kMaxTime);
    }
    if (!all) break;
  }
  return k;
}

inline std::uint32_t extend_run4(const std::uint8_t* keys, const std::uint8_t* vals,
                                 std::uint32_t i, std::uint32_t nr, std::uint64_t key,
                                 std::uint64_t data, std::uint32_t time) {
#if defined(__SSE2__) && defined(__x86_64__)
  if (i + 4 > nr || data > kMaxDataBlock - 3 - (nr - i)) return i;
  constexpr std::uint64_t kNextData = std::uint64_t{1} << 24;
  // Two 64-bit lanes a register (little-endian, as on disk); lanes are equal when both their
  // 32-bit halves are.
  const std::uint64_t v = pack_block_time(data, time);
  auto pair = [](std::uint64_t a, std::uint64_t b) {
    return _mm_set_epi64x(static_cast<long long>(b), static_cast<long long>(a));
  };
  __m128i k01 = pair(key, key + 1), k23 = pair(key + 2, key + 3);
  __m128i v01 = pair(v, v + kNextData), v23 = pair(v + 2 * kNextData, v + 3 * kNextData);
  const __m128i four = _mm_set1_epi64x(4), four_data = _mm_set1_epi64x(4 * kNextData);
  std::uint32_t k = i;
  for (; k + 4 <= nr; k += 4) {
    auto at = [k](const std::uint8_t* a, int half) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 8ull * k + 16 * half));
    };
    __m128i eq = _mm_and_si128(_mm_cmpeq_epi32(at(keys, 0), k01), _mm_cmpeq_epi32(at(keys, 1), k23));
    eq = _mm_and_si128(eq, _mm_cmpeq_epi32(at(vals, 0), v01));
    eq = _mm_and_si128(eq, _mm_cmpeq_epi32(at(vals, 1), v23));
    if (_mm_movemask_epi8(eq) != 0xffff) break;
    k01 = _mm_add_epi64(k01, four);
    k23 = _mm_add_epi64(k23, four);
    v01 = _mm_add_epi64(v01, four_data);
    v23 = _mm_add_epi64(v23, four_data);
  }
  return k;
#else
  return extend_run4_portable(keys, vals, i, nr, key, data, time);
#endif
}

}  // namespace thinmeta::thin
