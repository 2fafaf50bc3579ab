// SPDX-License-Identifier: GPL-3.0-or-later
// thin_check's logic (FORMAT.md §4-§9): every structure reachable from block 0 and from the
// held metadata snapshot, checked in phases (superblock, devices, mappings, space maps). Damage
// is reported to a CheckReport as data; nothing here prints or picks exit codes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

enum class Severity { kNonFatal, kFatal };

// Receives the findings in order. Implementations decide what to print.
class CheckReport {
 public:
  virtual ~CheckReport() = default;
  // A phase title ("examining superblock", ...).
  virtual void phase(const std::string& title) = 0;
  // A finding: a headline (what is lost or wrong) and an optional detail (the cause).
  virtual void problem(Severity s, const std::string& headline, const std::string& detail) = 0;
  // The superblock was readable: its transaction id and the free metadata blocks it records.
  virtual void info(std::uint64_t transaction_id, std::uint64_t metadata_free_blocks) = 0;
};

struct CheckOptions {
  bool superblock_only = false;
  bool skip_mappings = false;    // devices tree and top level of the mapping tree only
  bool metadata_snap = false;    // check the held snapshot's trees instead of the live ones
  std::optional<BlockAddr> override_mapping_root;
  std::optional<BlockAddr> override_details_root;
  std::size_t max_count_reports = 100;  // per space map; the rest are summarised
};

// A block whose on-disk count is higher than the references found (a leak).
struct Leak {
  std::uint64_t block;
  std::uint32_t on_disk;
  std::uint32_t expected;
};

struct CheckResult {
  bool fatal = false;
  bool non_fatal = false;
  std::optional<Superblock> live;   // block 0, when it is readable
  bool space_maps_checked = false;  // leak lists are complete only then
  std::vector<Leak> metadata_leaks;
  std::vector<Leak> data_leaks;
  std::uint64_t metadata_nr_allocated = 0;  // computed, when space maps were checked
  std::uint64_t data_nr_allocated = 0;
};

// Runs the check on `io` (which must outlive the call).
CheckResult check(pdata::IoEngine& io, const CheckOptions& opts, CheckReport& report);

}  // namespace thinmeta::thin
