// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/check/leaf_runs.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "persistent-data/cpu_features.h"

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

// Each run's first block and first entry (in runs[].len), the largest time: an entry a step.
std::uint32_t starts_scalar(const std::uint8_t* values, std::uint32_t nr, LeafRuns& out,
                            std::uint64_t& max_time) {
  std::uint64_t next = ~0ull;
  std::uint32_t r = 0;
  for (std::uint32_t i = 0; i < nr; ++i) {
    std::uint64_t v = pdata::load_le64(values + 8ull * i);
    std::uint64_t d = v >> 24;
    max_time = std::max(max_time, v & kMaxTime);
    if (d != next) out.runs[r++] = {d, i};
    next = d + 1;
  }
  return r;
}

#if defined(__x86_64__)
// The same, four entries a step: where an entry's block is not its predecessor's + 1 (a run
// starts) becomes a bit of a mask, the times' maximum is kept in 32-bit lanes (times have 24
// bits); then a run is written per bit set. ~15 instructions an entry scalar, ~4 here plus a
// few a run.
__attribute__((target("avx2"))) std::uint32_t starts_avx2(const std::uint8_t* values,
                                                           std::uint32_t nr, LeafRuns& out,
                                                           std::uint64_t& max_time) {
  constexpr std::uint32_t kWords = (LeafRuns::kMaxEntries + 63) / 64;
  std::uint64_t starts[kWords] = {};
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i time_mask = _mm256_set1_epi64x(static_cast<long long>(kMaxTime));
  __m256i tmax = _mm256_setzero_si256();
  // Whole steps of four from entry 0, a word of the mask (64 entries) at a time. Entry 0's
  // "predecessor" is the last key slot before the values (inside the block): its bit is set
  // below whatever it compared.
  const std::uint32_t whole = nr / 4 * 4;
  for (std::uint32_t w = 0; 64 * w < whole; ++w) {
    std::uint64_t acc = 0;
    const std::uint32_t end = std::min(whole, 64 * w + 64);
    for (std::uint32_t i = 64 * w, shift = 0; i < end; i += 4, shift += 4) {
      __m256i cur = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 8ull * i));
      __m256i prev = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 8ull * i - 8));
      __m256i joined = _mm256_cmpeq_epi64(_mm256_srli_epi64(cur, 24),
                                          _mm256_add_epi64(_mm256_srli_epi64(prev, 24), one));
      tmax = _mm256_max_epu32(tmax, _mm256_and_si256(cur, time_mask));
      acc |= static_cast<std::uint64_t>(~_mm256_movemask_pd(_mm256_castsi256_pd(joined)) & 0xf)
             << shift;
    }
    starts[w] = acc;
  }
  __m128i t4 = _mm_max_epu32(_mm256_castsi256_si128(tmax), _mm256_extracti128_si256(tmax, 1));
  t4 = _mm_max_epu32(t4, _mm_shuffle_epi32(t4, 0x4e));  // lanes 2, 3 over 0, 1
  max_time = static_cast<std::uint32_t>(_mm_cvtsi128_si32(t4));  // odd lanes: 0
  for (std::uint32_t i = whole; i < nr; ++i) {
    std::uint64_t v = pdata::load_le64(values + 8ull * i);
    max_time = std::max(max_time, v & kMaxTime);
    if (i == 0 || v >> 24 != (pdata::load_le64(values + 8ull * (i - 1)) >> 24) + 1)
      starts[i / 64] |= 1ull << (i % 64);
  }
  if (nr) starts[0] |= 1;  // the first entry starts a run
  std::uint32_t r = 0;
  for (std::uint32_t w = 0; w < kWords; ++w)
    for (std::uint64_t bits = starts[w]; bits; bits &= bits - 1) {
      std::uint32_t at = 64 * w + static_cast<std::uint32_t>(__builtin_ctzll(bits));
      out.runs[r++] = {pdata::load_le64(values + 8ull * at) >> 24, at};
    }
  return r;
}

const bool kHasAvx2 = pdata::cpu_has_avx2();
#endif

}  // namespace

void decode_leaf_runs(const pdata::NodeView& n, std::uint64_t nr_data, std::uint32_t pool_time,
                      LeafRuns& out, bool portable) {
  std::uint32_t nr = std::min(n.nr_entries(), LeafRuns::kMaxEntries);
  const std::uint8_t* values = n.value(0);
  // The common case first: runs only, the largest time noted on the way (no branch an entry
  // but the run's end; a run's len holds its first entry's index until the end); the largest
  // block is the largest run end. A leaf with anything to report is decoded again, exactly.
  std::uint64_t max_time = 0;
  std::uint32_t r = 0;
#if defined(__x86_64__)
  if (kHasAvx2 && !portable)
    r = starts_avx2(values, nr, out, max_time);
  else
#endif
    r = starts_scalar(values, nr, out, max_time);
  (void)portable;
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
