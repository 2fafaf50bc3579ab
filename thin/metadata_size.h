// SPDX-License-Identifier: GPL-3.0-or-later
// thin_metadata_size's arithmetic, exactly as 0.9.0 (FORMAT.md §17): units, size arguments
// (u64 arithmetic that wraps as the reference's does), the estimate and its formatting.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace thinmeta::thin {

inline constexpr int kNrUnits = 18;
inline constexpr int kUnitSectors = 1;

char unit_char(int idx);
const char* unit_name(int idx);
// Bytes per unit, computed in wrapping u64 arithmetic (so 1024^7 and up wrap, as in 0.9.0).
std::uint64_t unit_factor(int idx);
// One character of "bskKmMgGtTpPeEzZyY", else the first unit name that `s` is a prefix of
// (names in table order, binary before decimal; "" is "bytes"), else one of 1.x's spellings
// (KiB kB MiB MB GiB GB TiB TB PiB PB EiB EB, exbibyte). -1 if none.
int unit_index(std::string_view s);

struct SizeArg {
  std::uint64_t bytes = 0;  // value * factor, wrapping
  bool has_unit = false;
  std::string echo;         // digits as typed + unit name ("" when bare)
};
// "<digits>[unit]": digits saturate at 2^64 - 1; a bare number is in sectors. Returns false
// for an unknown unit.
bool parse_size_arg(std::string_view arg, SizeArg& out);

// Metadata blocks: 1 + (2 * pool / block) / 252 + max_thins (sizes in sectors).
std::uint64_t estimate_metadata_blocks(std::uint64_t block_sectors, std::uint64_t pool_sectors,
                                       std::uint64_t max_thins);
// blocks * 4096 bytes in the unit, printed as 0.9.0 does: integer if whole, else %.2e when the
// fraction is below 0.01, else %.2f.
std::string format_size(std::uint64_t blocks, int unit);

}  // namespace thinmeta::thin
