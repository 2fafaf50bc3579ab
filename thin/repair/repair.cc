// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/repair.h"

#include <algorithm>
#include <functional>
#include <map>

#include "persistent-data/btree/btree_walker.h"
#include "thin/repair/root_search.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

struct Mapping {
  std::uint64_t key;
  std::uint64_t data;
  std::uint32_t time;
};

std::string range_str(const KeyRange& r) {
  return "[" + std::to_string(r.begin) + ", " + (r.end ? std::to_string(*r.end) : "end") + ")";
}

bool in_ranges(const std::vector<KeyRange>& rs, std::uint64_t k) {
  for (const auto& r : rs)
    if (k >= r.begin && (!r.end || k < *r.end)) return true;
  return false;
}

// Walks a device's mapping tree, passing on every readable mapping whose data block fits the
// data device; damage goes to `lost` and never stops the walk. Under-filled nodes are kept.
class MappingWalk final : public BtreeVisitor {
 public:
  using Fn = std::function<Result<>(const Mapping&)>;
  MappingWalk(std::uint64_t nr_data_blocks, const Fn& fn) : nr_data_(nr_data_blocks), fn_(fn) {}

  Flow leaf(const NodeContext&, const NodeView& n) override {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
      BlockTime bt = unpack_block_time(n.value64(i));
      if (nr_data_ && bt.data_block >= nr_data_) {
        ++dropped;
        continue;
      }
      if (auto r = fn_({n.key(i), bt.data_block, bt.time}); !r) {
        error = r.error();
        return Flow::kStop;
      }
    }
    return Flow::kContinue;
  }
  Flow damage(const Damage& d) override {
    lost.push_back(d.lost);
    whats.push_back(d.what);
    return Flow::kContinue;
  }

  std::vector<KeyRange> lost;
  std::vector<std::string> whats;
  std::uint64_t dropped = 0;
  std::optional<Error> error;

 private:
  std::uint64_t nr_data_;
  const Fn& fn_;
};

Result<MappingWalk> walk_mappings(IoEngine& io, BlockAddr root, std::uint64_t nr_data,
                                  const MappingWalk::Fn& fn) {
  MappingWalk w(nr_data, fn);
  WalkOptions o;
  o.leaf_value_size = kMappingValueSize;
  o.check_fill = false;
  walk_btree(io, root, o, w);
  if (w.error) return std::unexpected(*w.error);
  return w;
}

struct DevicePlan {
  std::uint64_t id = 0;
  RecoveredDevice dev;
  std::vector<KeyRange> lost;  // of the live tree (everything when it has none)
  std::uint64_t live = 0, from_snapshot = 0;
  bool walk_once = false;  // not counted in pass 1: live is unknown
};

void note_walk(const std::string& who, const MappingWalk& w, std::vector<std::string>& notes) {
  for (std::size_t i = 0; i < w.lost.size(); ++i)
    notes.push_back(who + ": mappings of blocks " + range_str(w.lost[i]) + " lost: " + w.whats[i]);
  if (w.dropped)
    notes.push_back(who + ": " + std::to_string(w.dropped) +
                    " mappings beyond the end of the data device dropped");
}

void note_snapshot_not_mixed(const std::string& who, std::vector<std::string>& notes) {
  notes.push_back(who + ": the metadata snapshot holds an older version of the lost blocks "
                  "(thin_dump -m); it is not mixed into the current device");
}

}  // namespace

Result<RepairStats> repair(IoEngine& io, const RepairOptions& opts, MetadataSink& out,
                           std::vector<std::string>& notes) {
  std::optional<Superblock> sb;
  if (auto r = read_superblock(io, 0)) sb = *r;
  else notes.push_back(r.error().what + "; searching the device for the metadata trees");

  auto roots = find_roots(io, sb);
  std::uint32_t dbs = sb ? sb->data_block_size : 0;
  if (!sb && roots && roots->held_data_block_size) {
    dbs = roots->held_data_block_size;
    if (!opts.data_block_size)
      notes.push_back("data block size " + std::to_string(dbs) +
                      " taken from a metadata snapshot copy of the superblock");
  }
  if (!sb) {
    std::string missing;
    auto need = [&](bool have, const char* field) {
      if (have) return;
      if (!missing.empty()) missing += "\n";
      missing += "The following field needs to be provided on the command line due to "
                 "corruption in the superblock: ";
      missing += field;
    };
    need(opts.trans_id.has_value(), "transaction id");
    need(opts.data_block_size || dbs, "data block size");
    need(opts.nr_data_blocks.has_value(), "nr data blocks");
    if (!missing.empty()) return fail(Errc::kInvalidArgument, missing);
  }
  if (!roots) return std::unexpected(roots.error());
  for (auto& n : roots->notes) notes.push_back(n);

  SuperblockInfo info;
  info.trans_id = opts.trans_id.value_or(sb ? sb->trans_id : 0);
  info.data_block_size = opts.data_block_size.value_or(dbs);
  info.nr_data_blocks = opts.nr_data_blocks.value_or(sb ? sb->data_sm.nr_blocks : 0);
  info.flags = sb && !opts.clear_needs_check ? sb->flags : 0;
  info.version = 2;
  std::uint64_t nr_data = info.nr_data_blocks;

  // Pass 1: what each device still has, so details (mapped_blocks) precede the mappings.
  RepairStats stats;
  stats.searched = roots->searched;
  std::uint32_t max_time = roots->max_time;
  auto note_time = [&](const Mapping& m) -> Result<> {
    max_time = std::max(max_time, m.time);
    return {};
  };
  std::vector<DevicePlan> plans;
  for (auto& [id, dev] : roots->devices) {
    if (!opts.dev_ids.empty() &&
        std::find(opts.dev_ids.begin(), opts.dev_ids.end(), id) == opts.dev_ids.end())
      continue;
    DevicePlan p{id, dev, {}, 0, 0};
    const std::string who = "thin device " + std::to_string(id);
    // Walked once, in pass 2 (its notes are made there).
    p.walk_once = opts.sink_counts_mappings && !opts.skip_mappings && sb && dev.root &&
                  !dev.root_from_snapshot;
    if (p.walk_once) {
      plans.push_back(std::move(p));
      continue;
    }
    if (dev.root) {
      std::uint64_t n = 0;
      THINMETA_TRY(MappingWalk w, walk_mappings(io, *dev.root, nr_data, [&](const Mapping& m) {
                     ++n;
                     return note_time(m);
                   }));
      p.lost = w.lost;
      p.live = n;
      note_walk(who, w, notes);
      stats.dropped += w.dropped;
      if (dev.root_from_snapshot) p.from_snapshot = n, p.live = 0;
    } else {
      p.lost.push_back(KeyRange{});
      notes.push_back(who + ": its mapping tree is lost");
    }
    // The held snapshot stands in only for a device whose whole live tree is lost. Filling a
    // lost range inside a live tree from it would mix an older version of some blocks into
    // the current device, silently: report the range as lost instead.
    if (!p.lost.empty() && dev.root && dev.snapshot_root && !dev.root_from_snapshot)
      note_snapshot_not_mixed(who, notes);
    if (!p.lost.empty() && !dev.root && dev.snapshot_root && !dev.root_from_snapshot) {
      std::uint64_t n = 0;
      THINMETA_TRY(MappingWalk w, walk_mappings(io, *dev.snapshot_root, nr_data,
                                                [&](const Mapping& m) -> Result<> {
                                                  if (!in_ranges(p.lost, m.key)) return {};
                                                  ++n;
                                                  return note_time(m);
                                                }));
      p.from_snapshot = n;
      if (n)
        notes.push_back(who + ": its tree is lost; " + std::to_string(n) +
                        " mappings recovered from the metadata snapshot (as they were when it "
                        "was taken)");
    }
    plans.push_back(std::move(p));
  }
  info.time = sb ? sb->time : max_time;

  // Pass 2: emit.
  THINMETA_CHECK(out.begin_superblock(info));
  RunCoalescer runs(out);
  for (auto& p : plans) {
    DeviceInfo di{p.id, p.dev.details};
    if (p.dev.details_synthesized) {
      di.details.transaction_id = info.trans_id;
      di.details.creation_time = 0;
      di.details.snapshotted_time = info.time;  // safe: older mappings count as shared
      notes.push_back("thin device " + std::to_string(p.id) +
                      ": details lost; recreated from its mapping tree");
    }
    di.details.mapped_blocks = p.live + p.from_snapshot;  // walk_once: the sink counts
    THINMETA_CHECK(out.begin_device(di));
    ++stats.devices;
    stats.mappings += di.details.mapped_blocks;
    stats.from_snapshot += p.from_snapshot;
    if (!opts.skip_mappings) {
      std::vector<Mapping> fill;
      if (p.from_snapshot && !p.dev.root_from_snapshot) {
        THINMETA_TRY(MappingWalk w, walk_mappings(io, *p.dev.snapshot_root, nr_data,
                                                  [&](const Mapping& m) -> Result<> {
                                                    if (in_ranges(p.lost, m.key)) fill.push_back(m);
                                                    return {};
                                                  }));
        (void)w;
      }
      std::size_t next = 0;
      auto emit = [&](const Mapping& m) { return runs.add(m.key, m.data, m.time); };
      if (p.dev.root) {
        std::uint64_t n = 0;
        THINMETA_TRY(MappingWalk w, walk_mappings(io, *p.dev.root, nr_data,
                                                  [&](const Mapping& m) -> Result<> {
                                                    while (next < fill.size() && fill[next].key < m.key)
                                                      THINMETA_CHECK(emit(fill[next++]));
                                                    ++n;
                                                    return emit(m);
                                                  }));
        if (p.walk_once) {
          const std::string who = "thin device " + std::to_string(p.id);
          note_walk(who, w, notes);
          if (!w.lost.empty() && p.dev.snapshot_root) note_snapshot_not_mixed(who, notes);
          stats.dropped += w.dropped;
          stats.mappings += n;
        }
      }
      while (next < fill.size()) THINMETA_CHECK(emit(fill[next++]));
      THINMETA_CHECK(runs.flush());
    }
    THINMETA_CHECK(out.end_device());
  }
  THINMETA_CHECK(out.end_superblock());
  return stats;
}

}  // namespace thinmeta::thin
