// SPDX-License-Identifier: GPL-3.0-or-later
// The text device-mapper shows for dm-thin targets (FORMAT.md §11, the kernel's
// thin-provisioning.txt): the `thin` and `thin-pool` table parameters and the pool status line.
// Pure parsing, no I/O: what the kernel prints comes in as a string.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "persistent-data/result.h"

namespace thinmeta::dm {

// "MAJ:MIN" as the kernel prints a device in a table -> dev_t (glibc makedev).
Result<dev_t> parse_dev(std::string_view s);
std::string format_dev(dev_t d);  // "MAJ:MIN"

// `thin <pool dev> <dev id> [<external origin dev>]`
struct ThinParams {
  dev_t pool = 0;
  std::uint32_t thin_id = 0;  // 24 bits
  std::optional<dev_t> origin;
};
Result<ThinParams> parse_thin_params(std::string_view params);

// `thin-pool <metadata dev> <data dev> <data block size> <low water mark> <#features> [f...]`
struct PoolParams {
  dev_t metadata = 0;
  dev_t data = 0;
  std::uint32_t block_size_sectors = 0;
  std::uint64_t low_water_blocks = 0;
  std::vector<std::string> features;
};
Result<PoolParams> parse_pool_params(std::string_view params);

// `<trans id> <used meta>/<total meta> <used data>/<total data> <held root> <mode> ...`
// The kernel prints `Fail` for a failed pool and `Error` on an internal error: both are errors.
struct PoolStatus {
  std::uint64_t transaction_id = 0;
  std::uint64_t used_metadata_blocks = 0, total_metadata_blocks = 0;
  std::uint64_t used_data_blocks = 0, total_data_blocks = 0;
  std::optional<std::uint64_t> held_root;  // nullopt: `-`, no metadata snapshot held
  std::string mode;                        // rw, ro, out_of_data_space
  bool needs_check = false;
};
Result<PoolStatus> parse_pool_status(std::string_view status);

// The thin target's status: `<mapped sectors> <highest mapped sector>` (`-` when none), or Fail.
struct ThinStatus {
  std::uint64_t mapped_sectors = 0;
  std::optional<std::uint64_t> highest_mapped_sector;
};
Result<ThinStatus> parse_thin_status(std::string_view status);

// Whitespace-separated words.
std::vector<std::string_view> split_words(std::string_view s);

}  // namespace thinmeta::dm
