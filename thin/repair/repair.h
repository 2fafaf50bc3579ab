// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump --repair and thin_repair: a damage-tolerant walk that streams whatever can be
// recovered into a MetadataSink (the XML / human-readable writers or the restorer). Trees come
// from root_search; each device keeps every mapping that can still be read, the subtrees a
// damaged node held are put back from the orphaned nodes the metadata space map still counts
// (orphans.h), a device whose whole tree is lost takes the held metadata snapshot's only when
// asked to (use_snapshot), and mapped_blocks is recomputed. The pool time covers every
// mapping; a damaged superblock's fields are used where the metadata agrees with them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "thin/sink.h"

namespace thinmeta::thin {

struct RepairOptions {
  // Override (or supply, when the superblock is unreadable) superblock fields.
  std::optional<std::uint64_t> trans_id;
  std::optional<std::uint32_t> data_block_size;
  std::optional<std::uint64_t> nr_data_blocks;
  std::vector<std::uint64_t> dev_ids;  // empty: every device
  bool skip_mappings = false;
  bool clear_needs_check = false;      // thin_repair: the output is freshly checked metadata
  // The sink recomputes each device's mapped_blocks (the restorer does): devices whose live
  // tree is used whole are then walked once, not counted first (the superblock must be
  // readable: without it the pool time comes from that count walk).
  bool sink_counts_mappings = false;
  // A device whose whole live mapping tree is lost takes its tree in the held metadata
  // snapshot (an older version: blocks written since the snapshot was taken come back as they
  // were then). Off by default: the device is then left without those mappings.
  bool use_snapshot = false;
};

struct RepairStats {
  std::uint64_t devices = 0;
  std::uint64_t mappings = 0;        // emitted
  std::uint64_t from_snapshot = 0;   // of which taken from the held metadata snapshot
  std::uint64_t from_orphans = 0;    // of which found in orphaned subtrees
  std::uint64_t dropped = 0;         // unreadable values (data block beyond the data device)
  bool searched = false;             // the whole device was scanned for roots
};

// `notes` receives one line per thing the user should know (lost ranges, roots chosen).
// Errors: the missing superblock fields (one line each), "no compatible roots found", I/O and
// sink errors.
Result<RepairStats> repair(pdata::IoEngine& io, const RepairOptions& opts, MetadataSink& out,
                           std::vector<std::string>& notes);

}  // namespace thinmeta::thin
