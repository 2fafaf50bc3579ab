// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/data_runs.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "persistent-data/cpu_features.h"
#include "thin/device_details.h"

namespace thinmeta::thin {
namespace {

// Marks values [from, n) (from < n), the last one always; with kTimes, max_time takes in
// their times.
template <bool kTimes>
void mark_scalar(const std::uint8_t* values, std::uint32_t from, std::uint32_t n, std::uint64_t* ends,
                 std::uint32_t& max_time) {
  std::uint64_t v = pdata::load_le64(values + 8ull * from);
  for (std::uint32_t i = from; i + 1 < n; ++i) {
    const std::uint64_t next = pdata::load_le64(values + 8ull * (i + 1));
    if constexpr (kTimes) max_time = std::max(max_time, static_cast<std::uint32_t>(v & kMaxTime));
    ends[i / 64] |= std::uint64_t{next >> 24 != (v >> 24) + 1} << (i % 64);
    v = next;
  }
  if constexpr (kTimes) max_time = std::max(max_time, static_cast<std::uint32_t>(v & kMaxTime));
  ends[(n - 1) / 64] |= 1ull << ((n - 1) % 64);
}

// Mapping runs from value `from` on (ends zeroed by the caller).
bool mapping_scalar(const std::uint8_t* keys, const std::uint8_t* values, std::uint32_t from,
                    std::uint32_t n, std::uint64_t begin, std::uint64_t len, std::uint64_t* ends) {
  for (std::uint32_t i = from; i < n; ++i) {
    std::uint64_t d = pdata::load_le64(values + 8ull * i) >> 24;
    if (d - begin >= len) return false;
    bool go_on = i + 1 < n && (pdata::load_le64(values + 8ull * (i + 1)) >> 24) == d + 1 &&
                 pdata::load_le64(keys + 8ull * (i + 1)) == pdata::load_le64(keys + 8ull * i) + 1;
    ends[i / 64] |= std::uint64_t{!go_on} << (i % 64);
  }
  return true;
}

#if defined(__x86_64__)
// Four values a step: bit k set when value k's data block is followed by its own plus one
// (the data blocks against the next four's, loaded a value later); with kTimes, the times'
// maximum kept in tmax's 32-bit lanes (times have 24 bits: the odd lanes stay 0).
template <bool kTimes>
__attribute__((target("avx2"))) inline std::uint64_t go_on4_avx2(const std::uint8_t* v, __m256i& tmax) {
  const __m256i cur = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
  __m256i d = _mm256_srli_epi64(cur, 24);
  __m256i e = _mm256_srli_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 8)), 24);
  __m256i go_on = _mm256_cmpeq_epi64(_mm256_sub_epi64(e, d), _mm256_set1_epi64x(1));
  if constexpr (kTimes)
    tmax = _mm256_max_epu32(tmax, _mm256_and_si256(cur, _mm256_set1_epi64x(static_cast<long long>(kMaxTime))));
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(go_on)));
}

template <bool kTimes>
__attribute__((target("avx2"))) void mark_avx2(const std::uint8_t* values, std::uint32_t n,
                                               std::uint64_t* ends, std::uint32_t& max_time) {
  __m256i tmax = _mm256_setzero_si256();
  std::uint32_t i = 0;
  for (; i + 64 < n; i += 64) {  // whole words (the 65th value is read)
    std::uint64_t w = 0;
#pragma GCC unroll 16
    for (unsigned j = 0; j < 64; j += 4) w |= go_on4_avx2<kTimes>(values + 8ull * (i + j), tmax) << j;
    ends[i / 64] = ~w;
  }
  std::uint64_t w = 0;
  const std::uint32_t first = i;
#pragma GCC unroll 4
  for (; i + 4 < n; i += 4) w |= go_on4_avx2<kTimes>(values + 8ull * i, tmax) << (i % 64);
  if (i > first) ends[first / 64] = ~w & ((1ull << (i % 64)) - 1);  // i % 64 > 0 here
  if constexpr (kTimes) {
    __m128i t4 = _mm_max_epu32(_mm256_castsi256_si128(tmax), _mm256_extracti128_si256(tmax, 1));
    t4 = _mm_max_epu32(t4, _mm_shuffle_epi32(t4, 0x4e));  // lanes 2, 3 over 0, 1
    max_time = static_cast<std::uint32_t>(_mm_cvtsi128_si32(t4));  // odd lanes: 0
  }
  mark_scalar<kTimes>(values, i, n, ends, max_time);
}

__attribute__((target("avx2"))) inline __m256i at(const std::uint8_t* p, std::uint32_t k) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8ull * k));
}

// Four mappings a step: bits 0..3 set where a mapping is followed by its key and data block
// plus one; bits 4..7 set where a data block lies outside [begin, begin + len) (d - begin < len
// unsigned: both sides' top bits flipped, compared signed).
__attribute__((target("avx2"))) inline unsigned go_on4_mappings(const std::uint8_t* keys,
                                                                const std::uint8_t* values,
                                                                std::uint32_t i, __m256i base,
                                                                __m256i lim) {
  const __m256i one = _mm256_set1_epi64x(1), sign = _mm256_set1_epi64x(static_cast<long long>(1ull << 63));
  __m256i d = _mm256_srli_epi64(at(values, i), 24), e = _mm256_srli_epi64(at(values, i + 1), 24);
  __m256i go_on = _mm256_and_si256(_mm256_cmpeq_epi64(_mm256_sub_epi64(e, d), one),
                                   _mm256_cmpeq_epi64(_mm256_sub_epi64(at(keys, i + 1), at(keys, i)), one));
  __m256i in = _mm256_cmpgt_epi64(lim, _mm256_xor_si256(_mm256_sub_epi64(d, base), sign));
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(go_on))) |
         (~static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(in))) & 15u) << 4;
}

__attribute__((target("avx2"))) bool mapping_avx2(const std::uint8_t* keys, const std::uint8_t* values,
                                                  std::uint32_t n, std::uint64_t begin,
                                                  std::uint64_t len, std::uint64_t* ends) {
  const __m256i base = _mm256_set1_epi64x(static_cast<long long>(begin));
  const __m256i lim = _mm256_set1_epi64x(static_cast<long long>(len ^ (1ull << 63)));
  unsigned outside = 0;
  std::uint32_t i = 0;
  for (; i + 64 < n; i += 64) {  // whole words (the 65th mapping is read)
    std::uint64_t w = 0;
#pragma GCC unroll 16
    for (unsigned j = 0; j < 64; j += 4) {
      unsigned m = go_on4_mappings(keys, values, i + j, base, lim);
      w |= std::uint64_t{m & 15u} << j;
      outside |= m;
    }
    ends[i / 64] = ~w;
    if (outside & ~15u) return false;  // a small region: most leaves leave it early
  }
  std::uint64_t w = 0;
  const std::uint32_t first = i;
#pragma GCC unroll 4
  for (; i + 4 < n; i += 4) {
    unsigned m = go_on4_mappings(keys, values, i, base, lim);
    w |= std::uint64_t{m & 15u} << (i % 64);
    outside |= m;
  }
  if (outside & ~15u) return false;
  if (i > first) ends[first / 64] = ~w & ((1ull << (i % 64)) - 1);  // i % 64 > 0 here
  return mapping_scalar(keys, values, i, n, begin, len, ends);
}

const bool kHasAvx2 = pdata::cpu_has_avx2();
#endif

}  // namespace

namespace {

template <bool kTimes>
void run_ends_portable(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends,
                       std::uint32_t& max_time) {
  std::fill_n(ends, (n + 63) / 64, 0);
  if constexpr (kTimes) max_time = 0;
  if (n) mark_scalar<kTimes>(values, 0, n, ends, max_time);
}

template <bool kTimes>
void run_ends(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends, std::uint32_t& max_time) {
#if defined(__x86_64__)
  if (kHasAvx2) {
    std::fill_n(ends, (n + 63) / 64, 0);
    if constexpr (kTimes) max_time = 0;
    if (n) mark_avx2<kTimes>(values, n, ends, max_time);
    return;
  }
#endif
  run_ends_portable<kTimes>(values, n, ends, max_time);
}

}  // namespace

void data_run_ends(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends) {
  std::uint32_t unused;  // (not read nor written without times)
  run_ends<false>(values, n, ends, unused);
}
void data_run_ends(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends,
                   std::uint32_t& max_time) {
  run_ends<true>(values, n, ends, max_time);
}
void data_run_ends_portable(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends) {
  std::uint32_t unused;
  run_ends_portable<false>(values, n, ends, unused);
}
void data_run_ends_portable(const std::uint8_t* values, std::uint32_t n, std::uint64_t* ends,
                            std::uint32_t& max_time) {
  run_ends_portable<true>(values, n, ends, max_time);
}

}  // namespace thinmeta::thin

namespace thinmeta::thin {

bool mapping_run_ends_portable(const std::uint8_t* keys, const std::uint8_t* values, std::uint32_t n,
                               std::uint64_t begin, std::uint64_t len, std::uint64_t* ends) {
  std::fill_n(ends, (n + 63) / 64, 0);
  return mapping_scalar(keys, values, 0, n, begin, len, ends);
}

bool mapping_run_ends(const std::uint8_t* keys, const std::uint8_t* values, std::uint32_t n,
                      std::uint64_t begin, std::uint64_t len, std::uint64_t* ends) {
  // A leaf whose first data block lies outside (most leaves, for a small region): no marks.
  if (n && (pdata::load_le64(values) >> 24) - begin >= len) return false;
#if defined(__x86_64__)
  if (kHasAvx2) {
    std::fill_n(ends, (n + 63) / 64, 0);
    return mapping_avx2(keys, values, n, begin, len, ends);
  }
#endif
  (void)keys, (void)values, (void)n, (void)begin, (void)len, (void)ends;
  return false;
}

}  // namespace thinmeta::thin
