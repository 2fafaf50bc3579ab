// SPDX-License-Identifier: GPL-3.0-or-later
// State shared by the check phases: the options, the report, the superblocks being checked
// and the reference counts computed from every tree (FORMAT.md §8).
#pragma once

#include <cstdint>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/space_map/ref_counts.h"
#include "persistent-data/space_map/space_map_reader.h"
#include "thin/check/check.h"
#include "thin/device_details.h"

namespace thinmeta::thin::check_detail {

using pdata::BlockAddr;

// "[b, e]" with e exclusive or "-" (the established tool's notation).
std::string range_str(const pdata::KeyRange& r);

// One tree set to check: the live trees (block 0) or the held snapshot's.
struct Roots {
  std::string label;  // "" for the live trees, "metadata snapshot: " for the held ones
  BlockAddr mapping_root;
  BlockAddr details_root;
  std::uint32_t time;  // the pool time of that superblock: no mapping may be newer
};

struct Device {
  std::optional<DeviceDetails> details;
  std::optional<BlockAddr> subtree_root;
  bool counted = false;  // reached through a top-level leaf seen for the first time
};

struct Context {
  Context(pdata::IoEngine& io_, const CheckOptions& o, CheckReport& r, CheckResult& res)
      : io(io_), opts(o), report(r), result(res) {}

  pdata::IoEngine& io;
  const CheckOptions& opts;
  CheckReport& report;
  CheckResult& result;

  Superblock live;
  std::optional<Superblock> held;
  BlockAddr nr_meta = 0;         // metadata blocks the metadata space map covers
  std::uint64_t nr_data = 0;     // data blocks the data space map covers
  // Device-id ranges the details tree lost to damage, per tree set label.
  std::map<std::string, std::vector<pdata::KeyRange>> lost_details;
  bool sm_roots_ok = true;        // the space-map roots point inside the device
  pdata::RefCounts meta_counts;  // references found to each metadata block
  pdata::RefCounts data_counts;  // references found to each data block (per distinct leaf)
  // The data space map's reference-count tree, gathered from the mapping walk's reads
  // (check.cc, persistent-data/ref_count_gather.h); check_space_maps finishes it.
  std::unique_ptr<pdata::RefCountTreeGather> data_ref_tree;

  // Mapping counts below bottom-level nodes already walked, for shared subtrees (FORMAT.md
  // §8.2): leaves store their entry count (leaf_sizes: entries + 1 by block, a byte each over
  // the metadata device, 0: not a leaf walked; leaf_totals: those that do not fit, and the
  // memoised totals of shared subtrees); internal nodes their children.
  std::vector<std::uint8_t> leaf_sizes;
  std::unordered_map<BlockAddr, std::uint64_t> leaf_totals;
  std::unordered_map<BlockAddr, std::vector<BlockAddr>> children;
  std::uint64_t subtree_total(BlockAddr b, unsigned depth = 0);
  void note_leaf(BlockAddr b, std::uint32_t nr_entries) {
    if (leaf_sizes.empty()) leaf_sizes.assign(nr_meta, 0);
    if (b < leaf_sizes.size() && nr_entries < 255)
      leaf_sizes[b] = static_cast<std::uint8_t>(nr_entries + 1);
    else
      leaf_totals[b] = nr_entries;
  }
  // Whether a total is known for b (a leaf walked, or a memoised subtree).
  bool has_total(BlockAddr b) const {
    return (b < leaf_sizes.size() && leaf_sizes[b]) || leaf_totals.count(b);
  }

  void fatal(const std::string& headline, const std::string& detail = {}) {
    result.fatal = true;
    report.problem(Severity::kFatal, headline, detail);
  }
  void non_fatal(const std::string& headline, const std::string& detail = {}) {
    result.non_fatal = true;
    report.problem(Severity::kNonFatal, headline, detail);
  }
  // Adds one reference to a metadata block; returns true if it is the first. Blocks of the
  // metadata device count in meta_refs (a byte each, the walks' hot path: a plain increment);
  // what does not fit (counts past 255, blocks beyond nr_meta, references before the
  // superblock sized meta_refs) goes to meta_counts. fold_meta_refs() adds them up.
  bool ref_meta(BlockAddr b) {
    if (b < meta_refs.size()) [[likely]] {
      std::uint8_t& v = meta_refs[b];
      if (v != 255) return v++ == 0;
      meta_counts.inc(b);
      return false;
    }
    if (b >= nr_meta)
      fatal("metadata block " + std::to_string(b) + " is referenced but lies beyond the " +
            std::to_string(nr_meta) + " blocks of the metadata space map");
    bool first = meta_counts.get(b) == 0;
    meta_counts.inc(b);
    return first;
  }
  // Sizes meta_refs and empties meta_counts for a metadata device of nr_meta blocks.
  void reset_meta_refs() {
    meta_counts = pdata::RefCounts(nr_meta);
    meta_refs.assign(nr_meta, 0);
  }
  // Moves meta_refs into meta_counts (before the metadata space map is compared with them).
  void fold_meta_refs();
  std::vector<std::uint8_t> meta_refs;  // see ref_meta
};

using Devices = std::map<std::uint64_t, Device>;

// The phases, in order. Each reports to ctx and records what the next ones need.
bool check_superblocks(Context& ctx);                                  // superblock_check.cc
void check_details(Context& ctx, const Roots& roots, Devices& devs);    // devices_check.cc
void check_top_level(Context& ctx, const Roots& roots, Devices& devs);  // devices_check.cc
void check_mappings(Context& ctx, const Roots& roots, const Devices& devs);  // mappings_check.cc
void check_space_maps(Context& ctx);                                   // space_maps_check.cc

}  // namespace thinmeta::thin::check_detail
