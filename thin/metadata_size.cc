// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/metadata_size.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

namespace thinmeta::thin {

namespace {

constexpr char kChars[] = "bskKmMgGtTpPeEzZyY";
constexpr const char* kNames[kNrUnits] = {
    "bytes",     "sectors",   "kibibytes", "kilobytes", "mebibytes",  "megabytes",
    "gibibytes", "gigabytes", "tebibytes", "terabytes", "pebibytes",  "petabytes",
    "ebibytes",  "exabytes",  "zebibytes", "zetabytes", "yobibytes",  "yottabytes"};

// What x86-64 code generated for (unsigned long long)d gives: values >= 2^64, inf and NaN
// become 0.
std::uint64_t to_u64_like_x86(double d) {
  if (d >= 0 && d < 18446744073709551616.0) return static_cast<std::uint64_t>(d);
  return 0;
}

}  // namespace

char unit_char(int idx) { return kChars[idx]; }
const char* unit_name(int idx) { return kNames[idx]; }

std::uint64_t unit_factor(int idx) {
  if (idx == 0) return 1;
  if (idx == 1) return 512;
  std::uint64_t base = idx % 2 == 0 ? 1024 : 1000, f = 1;
  for (int i = 0; i <= (idx - 2) / 2; ++i) f *= base;  // wraps for zebi- and above
  return f;
}

int unit_index(std::string_view s) {
  if (s.size() == 1) {
    const char* p = std::strchr(kChars, s[0]);
    return p && s[0] ? static_cast<int>(p - kChars) : -1;
  }
  for (int i = 0; i < kNrUnits; ++i)
    if (std::string_view(kNames[i]).starts_with(s)) return i;
  // 1.x's spellings that 0.9.0 did not know (none of them is a prefix of a name above).
  static constexpr std::pair<std::string_view, int> k1x[] = {
      {"KiB", 2}, {"kB", 3},  {"MiB", 4}, {"MB", 5},  {"GiB", 6},      {"GB", 7},
      {"TiB", 8}, {"TB", 9},  {"PiB", 10}, {"PB", 11}, {"EiB", 12},    {"EB", 13},
      {"exbibyte", 12}, {"exbibytes", 12}};
  for (const auto& [name, idx] : k1x)
    if (s == name) return idx;
  return -1;
}

bool parse_size_arg(std::string_view arg, SizeArg& out) {
  std::size_t n = 0;
  std::uint64_t v = 0;
  bool saturated = false;
  while (n < arg.size() && arg[n] >= '0' && arg[n] <= '9') {
    unsigned d = static_cast<unsigned>(arg[n] - '0');
    if (v > (~0ull - d) / 10) saturated = true;
    if (!saturated) v = v * 10 + d;
    ++n;
  }
  if (saturated) v = ~0ull;  // strtoull
  out.echo = std::string(arg.substr(0, n));
  if (n == arg.size()) {
    out.has_unit = false;
    out.bytes = v * unit_factor(kUnitSectors);
    return true;
  }
  int idx = unit_index(arg.substr(n));
  if (idx < 0) return false;
  out.has_unit = true;
  out.bytes = v * unit_factor(idx);
  out.echo += kNames[idx];
  return true;
}

std::uint64_t estimate_metadata_blocks(std::uint64_t block_sectors, std::uint64_t pool_sectors,
                                       std::uint64_t max_thins) {
  // 252 = (4096 - 64) / 16; the factor 2 assumes half-full leaves.
  return 1 + 2 * pool_sectors / block_sectors / 252 + max_thins;
}

std::string format_size(std::uint64_t blocks, int unit) {
  double r = static_cast<double>(blocks) * 4096.0 / static_cast<double>(unit_factor(unit));
  double whole = std::trunc(r);
  char buf[64];
  if (r == whole || std::isnan(r))
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(to_u64_like_x86(r)));
  else if (r - whole < 1e-2)
    std::snprintf(buf, sizeof buf, "%0.2e", r);
  else
    std::snprintf(buf, sizeof buf, "%0.2f", r);
  return buf;
}

}  // namespace thinmeta::thin
