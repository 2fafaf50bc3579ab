// SPDX-License-Identifier: GPL-3.0-or-later
// Little-endian loads and stores on raw block bytes (FORMAT.md §0: everything on disk is LE).
#pragma once

#include <cstdint>
#include <cstring>

namespace thinmeta::pdata {

inline std::uint32_t load_le32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // x86-64 and every target we build for is little-endian
}
inline std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_le32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, sizeof v); }
inline void store_le64(std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "big-endian hosts need byte swaps here");

}  // namespace thinmeta::pdata
