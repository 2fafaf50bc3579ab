// SPDX-License-Identifier: GPL-3.0-or-later
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), FORMAT.md §3.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing-by-8 table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace thinmeta::pdata {

// Raw register update: no initial or final inversion. crc32c_update(0xFFFFFFFF, ...) without
// a final inversion is what dm-persistent-data stores (before the per-kind salt).
std::uint32_t crc32c_update(std::uint32_t crc, const void* data, std::size_t len);

// The standard CRC-32C (init ~0, final ~0), e.g. 0xE3069283 for "123456789".
inline std::uint32_t crc32c(const void* data, std::size_t len) {
  return ~crc32c_update(0xFFFFFFFFu, data, len);
}

// Which implementation crc32c_update uses; tests force each one.
enum class Crc32cImpl { kAuto, kHardware, kPortable };
void crc32c_force_impl(Crc32cImpl impl);
bool crc32c_hardware_available();
std::uint32_t crc32c_update_portable(std::uint32_t crc, const void* data, std::size_t len);

}  // namespace thinmeta::pdata
