// SPDX-License-Identifier: GPL-3.0-or-later
// Resolves a thin device path (/dev/vg/lv, /dev/mapper/NAME, /dev/dm-N) through the
// device-mapper tables: the thin device (name, thin id, size, external origin) and its pool
// (name, metadata and data devices as openable paths, data block size). FORMAT.md §11.
//
// Typical use (thin_send, thin_migrate):
//   THINMETA_TRY(auto ctl, dm::Control::open());
//   THINMETA_TRY(auto thin, dm::resolve_thin(ctl, "/dev/vg/snap"));
//   THINMETA_TRY(auto hold, dm::MetadataSnapHold::acquire(ctl, thin.pool.name));  // snap_hold.h
//   open thin.pool.metadata_path at hold->root() (thin::RootSelector{true, hold->root()},
//   InputOptions{.exclusive = false}); dm::check_snapshot_has(metadata, {thin.thin_id});
//   read data at thin.pool.data_path, block b at b * thin.pool.block_size_sectors * 512.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dm/control.h"
#include "persistent-data/result.h"

namespace thinmeta::dm {

struct PoolDevice {
  std::string name;  // dm name (lvm2: vg-pool-tpool)
  dev_t dev = 0;
  dev_t metadata_dev = 0;
  dev_t data_dev = 0;
  std::string metadata_path;  // openable nodes for metadata_dev / data_dev (dev_node.h)
  std::string data_path;
  std::uint32_t block_size_sectors = 0;
  std::uint64_t size_sectors = 0;  // the pool target's length: nr data blocks * block size
  std::vector<std::string> features;
  std::uint64_t nr_data_blocks() const { return size_sectors / block_size_sectors; }
  std::uint64_t block_size_bytes() const { return std::uint64_t{block_size_sectors} * 512; }
};

struct ThinDevice {
  std::string path;  // as given
  std::string name;  // dm name
  dev_t dev = 0;
  std::uint32_t thin_id = 0;
  std::uint64_t size_sectors = 0;  // the thin target's length
  bool read_only = false;          // the dm device is read-only (lvm2 -pr, dmsetup -r)
  int open_count = 0;
  std::optional<dev_t> origin_dev;  // external origin (the thin target's optional argument)
  std::string origin_path;          // openable node for it, when there is one
  PoolDevice pool;
};

// `path` must be a block device whose live table is exactly one `thin` target at sector 0,
// over an active `thin-pool` device. Errors are one line naming `path`.
Result<ThinDevice> resolve_thin(const Control& ctl, const std::string& path);
// The pool device `pool` (a `thin-pool` target at sector 0, its only one).
Result<PoolDevice> resolve_pool(const Control& ctl, const DevRef& pool);

}  // namespace thinmeta::dm
