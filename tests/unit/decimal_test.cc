// SPDX-License-Identifier: GPL-3.0-or-later
// The output number formatter (persistent-data/decimal.h) against std::to_chars: every length
// and path (1-8 digits from the fraction, the 8-digit parts of larger numbers with their
// leading zeros), the edges around every power of ten and of two, random values of every bit
// width. (Checked once exhaustively for every 32-bit value and every 8-digit part: see
// /work/notes/fmt19.md.)
#include <gtest/gtest.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "persistent-data/decimal.h"

namespace {

using thinmeta::pdata::kMaxDecimalU64;
using thinmeta::pdata::write_u64;

std::string reference(std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// What write_u64 writes, checked not to touch a byte past its end.
std::string formatted(std::uint64_t v) {
  char buf[kMaxDecimalU64 + 8];
  std::memset(buf, 'x', sizeof buf);
  char* end = write_u64(buf, v);
  EXPECT_LE(end - buf, static_cast<long>(kMaxDecimalU64)) << v;
  EXPECT_EQ(*end, 'x') << "wrote past the end for " << v;
  return std::string(buf, end);
}

TEST(Decimal, EdgeValues) {
  EXPECT_EQ(formatted(0), "0");
  EXPECT_EQ(formatted(1), "1");
  EXPECT_EQ(formatted(9), "9");
  EXPECT_EQ(formatted(10), "10");
  EXPECT_EQ(formatted(99), "99");
  EXPECT_EQ(formatted(100), "100");
  EXPECT_EQ(formatted(99999999), "99999999");
  EXPECT_EQ(formatted(100000000), "100000000");
  EXPECT_EQ(formatted(100000001), "100000001");
  EXPECT_EQ(formatted(4294967295u), "4294967295");
  EXPECT_EQ(formatted(4294967296u), "4294967296");
  EXPECT_EQ(formatted(9999999999999999ull), "9999999999999999");
  EXPECT_EQ(formatted(10000000000000000ull), "10000000000000000");
  EXPECT_EQ(formatted(10000000000000001ull), "10000000000000001");
  EXPECT_EQ(formatted(9999999999999999999ull), "9999999999999999999");
  EXPECT_EQ(formatted(10000000000000000000ull), "10000000000000000000");
  EXPECT_EQ(formatted(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(thinmeta::pdata::decimal_string(0), "0");
  EXPECT_EQ(thinmeta::pdata::decimal_string(std::numeric_limits<std::uint64_t>::max()),
            "18446744073709551615");
}

TEST(Decimal, AroundEveryPowerOfTenAndOfTwo) {
  std::uint64_t p = 1;
  for (int i = 0; i < 20; ++i, p *= 10)
    for (std::uint64_t d = 0; d <= 3; ++d)
      for (std::uint64_t v : {p - d, p + d}) ASSERT_EQ(formatted(v), reference(v)) << v;
  for (int i = 0; i < 64; ++i) {
    std::uint64_t b = std::uint64_t{1} << i;
    for (std::uint64_t v : {b - 1, b, b + 1}) ASSERT_EQ(formatted(v), reference(v)) << v;
  }
}

// Every value below 10^6 (every 1-6 digit path, every pair of every position), then the
// 8-digit parts of larger numbers: a high part with each low part that has a zero run or
// nines at each position (the fraction's rounding is where such values would go wrong).
TEST(Decimal, EveryShortValueAndEveryZeroOrNineRun) {
  for (std::uint64_t v = 0; v < 1000000; ++v) ASSERT_EQ(formatted(v), reference(v)) << v;
  const std::uint64_t highs[] = {0, 1, 7, 99999999, 100000000, 1844, 184467440737ull};
  for (std::uint64_t high : highs)
    for (std::uint64_t lo = 1; lo < 100000000; lo *= 10)
      for (std::uint64_t low : {lo - 1, lo, lo + 1, 10 * lo - 1, 99999999 - lo + 1}) {
        if (high > (std::numeric_limits<std::uint64_t>::max() - low) / 100000000) continue;
        std::uint64_t v = high * 100000000 + low;
        ASSERT_EQ(formatted(v), reference(v)) << v;
      }
}

TEST(Decimal, RandomValuesOfEveryWidth) {
  std::mt19937_64 rng(18);
  for (int bits = 1; bits <= 64; ++bits)
    for (int k = 0; k < 2000; ++k) {
      std::uint64_t v = rng() >> (64 - bits);
      ASSERT_EQ(formatted(v), reference(v)) << v;
    }
  // 7- and 8-digit values (the fraction path with three pairs) densely.
  std::uniform_int_distribution<std::uint64_t> wide(1000000, 99999999);
  for (int k = 0; k < 200000; ++k) {
    std::uint64_t v = wide(rng);
    ASSERT_EQ(formatted(v), reference(v)) << v;
  }
}

}  // namespace
