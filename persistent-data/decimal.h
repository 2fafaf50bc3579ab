// SPDX-License-Identifier: GPL-3.0-or-later
// The one integer-to-text formatter of the tools' output (thin_dump's XML and human forms,
// thin_rmap, thin_delta, thin_ls, messages built in a signal handler): unsigned decimal, no
// locale, no allocation, written straight into the caller's buffer. Async-signal-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace thinmeta::pdata {

namespace decimal_detail {

inline constexpr char kPairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

inline void put_pair(char* p, std::uint64_t pair) { std::memcpy(p, kPairs + 2 * pair, 2); }

constexpr std::uint64_t pow10(int d) { return d == 0 ? 1 : 10 * pow10(d - 1); }

// n / 10^D (n < 10^(D+2), D even, D <= 6) as fixed point: the integer part (the leading one or
// two digits) above bit 32, the remaining D digits as the fraction in the low 32 bits, from
// which each `* 100` lifts the next pair above bit 32 (no division).
// Exact: with M = ceil(2^52 / 10^D), y = floor(n * M / 2^20) + 1 is above n * 2^32 / 10^D and
// exceeds it by at most 1 + n / 2^20 < 97, below 2^32 / 10^D (>= 4294): y / 2^32 lies in
// [n / 10^D, (n + 1) / 10^D), so every pair taken from the fraction is the exact one. n * M is
// below 100 * 2^52: no overflow.
template <int D>
inline std::uint64_t fixed_point(std::uint32_t n) {
  static_assert(D >= 2 && D <= 6 && D % 2 == 0);
  constexpr std::uint64_t kMul = ((std::uint64_t{1} << 52) + pow10(D) - 1) / pow10(D);
  return ((n * kMul) >> 20) + 1;
}

// Writes the `Pairs` digit pairs held in y's fraction at p, returns the end.
template <int Pairs>
inline char* put_fraction(char* p, std::uint64_t y) {
#pragma GCC unroll 4
  for (int i = 0; i < Pairs; ++i, p += 2) {
    y = static_cast<std::uint32_t>(y) * std::uint64_t{100};
    put_pair(p, y >> 32);
  }
  return p;
}

// n < 10^(D+2) with 2 + D digits (Wide) or 1 + D digits.
template <int D, bool Wide>
inline char* put_digits(char* p, std::uint32_t n) {
  std::uint64_t y = fixed_point<D>(n);
  if constexpr (Wide) {
    put_pair(p, y >> 32);
    p += 2;
  } else {
    *p++ = static_cast<char>('0' + (y >> 32));
  }
  return put_fraction<D / 2>(p, y);
}

// n < 10^8 without leading zeros.
inline char* put_below_1e8(char* p, std::uint32_t n) {
  if (n < 100) {
    if (n < 10) {
      *p = static_cast<char>('0' + n);
      return p + 1;
    }
    put_pair(p, n);
    return p + 2;
  }
  if (n < 1000000) {
    if (n < 10000) return n < 1000 ? put_digits<2, false>(p, n) : put_digits<2, true>(p, n);
    return n < 100000 ? put_digits<4, false>(p, n) : put_digits<4, true>(p, n);
  }
  return n < 10000000 ? put_digits<6, false>(p, n) : put_digits<6, true>(p, n);
}

}  // namespace decimal_detail

// The most characters write_u64 writes (2^64 - 1).
inline constexpr std::size_t kMaxDecimalU64 = 20;

// Writes v in decimal at p (room for kMaxDecimalU64 characters), returns the end. Below 10^8
// (nearly every number the tools print) one multiplication, then a multiplication by 100 per
// further digit pair; above, split into 8-digit parts by constant divisions.
inline char* write_u64(char* p, std::uint64_t v) {
  using namespace decimal_detail;
  constexpr std::uint64_t k1e8 = pow10(8);
  if (v < k1e8) return put_below_1e8(p, static_cast<std::uint32_t>(v));
  std::uint64_t low = v % k1e8;
  v /= k1e8;
  if (v < k1e8) {
    p = put_below_1e8(p, static_cast<std::uint32_t>(v));
  } else {
    p = put_below_1e8(p, static_cast<std::uint32_t>(v / k1e8));  // below 1845 (v < 2^64 / 10^8)
    p = put_digits<6, true>(p, static_cast<std::uint32_t>(v % k1e8));
  }
  return put_digits<6, true>(p, static_cast<std::uint32_t>(low));
}

// v in decimal as a string (for column layouts that measure fields before printing them).
inline std::string decimal_string(std::uint64_t v) {
  char buf[kMaxDecimalU64];
  return std::string(buf, write_u64(buf, v));
}

}  // namespace thinmeta::pdata
