// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace thinmeta::pdata {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;

struct Tables {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};
constexpr Tables kTables;

// (a * b) mod P over GF(2), bit-reflected as the CRC register is (1 << 31 is x^0).
std::uint32_t mul_mod_p(std::uint32_t a, std::uint32_t b) {
  std::uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_serial(std::uint64_t c, const unsigned char* p,
                                                              std::size_t len) {
  while (len >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    len -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (len--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

// Three interleaved streams of kStripe bytes hide the crc32 instruction's latency (a 4 KiB
// block is one round); the streams are joined with "append kStripe zero bytes", which is a
// multiplication by x^(8 kStripe) mod P, the constant kShift. It is computed with the portable
// code: static initialisation runs on CPUs without SSE4.2 too (qemu's default CPU has none).
// The multiplication is linear in the other factor, so it is 4 table lookups, one a byte of
// it (kShiftBy[k][v] = kShift * (v << 8k)): the bit loop of mul_mod_p cost as much as a
// quarter of a block's checksum (its branches are the data's bits).
constexpr std::size_t kStripe = 1360;
const std::uint32_t kShift = [] {
  static const unsigned char zeros[kStripe] = {};
  return crc32c_update_portable(1u << 31, zeros, kStripe);  // x^0 shifted by kStripe bytes
}();
const auto kShiftBy = [] {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  for (std::uint32_t k = 0; k < 4; ++k)
    for (std::uint32_t v = 0; v < 256; ++v) t[k][v] = mul_mod_p(kShift, v << (8 * k));
  return t;
}();

std::uint32_t shift_stripe(std::uint32_t c) {
  return kShiftBy[0][c & 0xFF] ^ kShiftBy[1][(c >> 8) & 0xFF] ^ kShiftBy[2][(c >> 16) & 0xFF] ^
         kShiftBy[3][c >> 24];
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(std::uint32_t crc, const void* data,
                                                          std::size_t len) {
  auto p = static_cast<const unsigned char*>(data);
  std::uint64_t c = crc;
  while (len >= 3 * kStripe) {
    std::uint64_t c1 = 0, c2 = 0;
    for (std::size_t k = 0; k < kStripe; k += 8) {
      std::uint64_t w0, w1, w2;
      std::memcpy(&w0, p + k, 8);
      std::memcpy(&w1, p + kStripe + k, 8);
      std::memcpy(&w2, p + 2 * kStripe + k, 8);
      c = _mm_crc32_u64(c, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    auto r = shift_stripe(static_cast<std::uint32_t>(c)) ^ static_cast<std::uint32_t>(c1);
    c = shift_stripe(r) ^ static_cast<std::uint32_t>(c2);
    p += 3 * kStripe;
    len -= 3 * kStripe;
  }
  return crc32c_serial(c, p, len);
}
#endif

Crc32cImpl g_forced = Crc32cImpl::kAuto;

bool detect_hw() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}
const bool kHasHw = detect_hw();

}  // namespace

std::uint32_t crc32c_update_portable(std::uint32_t crc, const void* data, std::size_t len) {
  auto p = static_cast<const unsigned char*>(data);
  const auto& t = kTables.t;
  while (len >= 8) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return crc;
}

bool crc32c_hardware_available() { return kHasHw; }

void crc32c_force_impl(Crc32cImpl impl) { g_forced = impl; }

std::uint32_t crc32c_update(std::uint32_t crc, const void* data, std::size_t len) {
#if defined(__x86_64__)
  if (kHasHw && g_forced != Crc32cImpl::kPortable) return crc32c_hw(crc, data, len);
#endif
  return crc32c_update_portable(crc, data, len);
}

}  // namespace thinmeta::pdata
