// SPDX-License-Identifier: GPL-3.0-or-later
// What thin_ls needs from the mapping trees (FORMAT.md §15): per device, how many of its
// mappings point at a data block mapped exactly once in the whole pool, and its highest mapped
// virtual block. Shared subtrees are read once: every node gets the number of device paths
// that reach it, and each distinct leaf adds its mappings that many times.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::thin {

using pdata::BlockAddr;

struct DeviceUsage {
  std::uint64_t exclusive_blocks = 0;
  std::optional<std::uint64_t> highest_block;  // none for a device without mappings
};

struct UsageOptions {
  bool exclusive = false;
  bool highest = false;
};

// Per device of the top-level tree at `mapping_root`. Damage is an Errc::kDamage error.
Result<std::map<std::uint64_t, DeviceUsage>> pool_usage(pdata::IoEngine& io,
                                                        BlockAddr mapping_root,
                                                        const UsageOptions& opts);

// The 0.9.0 human-readable size of a byte count: "0", "4096", "64KiB", "63MiB", ...
std::string human_size(std::uint64_t bytes);

}  // namespace thinmeta::thin
