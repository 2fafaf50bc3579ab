// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/repair.h"

#include <algorithm>
#include <functional>
#include <map>

#include "persistent-data/btree/btree_walker.h"
#include "thin/repair/root_search.h"
#include "thin/repair/superblock_salvage.h"
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

bool in_ranges(const KeyRange& r, std::uint64_t k) {
  return k >= r.begin && (!r.end || k < *r.end);
}

bool in_ranges(const std::vector<KeyRange>& rs, std::uint64_t k) {
  for (const auto& r : rs)
    if (in_ranges(r, k)) return true;
  return false;
}

// Walks a device's mapping tree, passing on every readable mapping whose data block fits the
// data device; damage goes to `lost` and never stops the walk. Under-filled nodes are kept.
class MappingWalk final : public BtreeVisitor {
 public:
  using Fn = std::function<Result<>(const Mapping&)>;
  // The orphaned subtrees that take a damaged node's place (empty: none).
  using Grafts = std::function<std::vector<BlockAddr>(BlockAddr damaged)>;
  MappingWalk(IoEngine& io, std::uint64_t nr_data_blocks, const Fn& fn, const Grafts* grafts)
      : io_(io), nr_data_(nr_data_blocks), fn_(fn), grafts_(grafts) {}

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
    std::vector<BlockAddr> g;
    if (grafts_ && *grafts_) g = (*grafts_)(d.addr);
    if (g.empty()) {
      lost.push_back(d.lost);
      whats.push_back(d.what);
      return Flow::kContinue;
    }
    // The orphans lie inside d.lost, in key order: the device's order is kept.
    Fn inside = [&](const Mapping& m) -> Result<> {
      if (!in_ranges(d.lost, m.key)) return {};
      ++grafted;
      return fn_(m);
    };
    for (BlockAddr r : g) {
      MappingWalk w(io_, nr_data_, inside, nullptr);
      WalkOptions o;
      o.leaf_value_size = kMappingValueSize;
      o.check_fill = false;
      walk_btree(io_, r, o, w);
      dropped += w.dropped;
      for (std::size_t i = 0; i < w.lost.size(); ++i) lost.push_back(w.lost[i]), whats.push_back(w.whats[i]);
      if (w.error) {
        error = w.error;
        return Flow::kStop;
      }
    }
    return Flow::kContinue;
  }

  std::vector<KeyRange> lost;
  std::vector<std::string> whats;
  std::uint64_t dropped = 0;
  std::uint64_t grafted = 0;  // mappings found in orphaned subtrees
  std::optional<Error> error;

 private:
  IoEngine& io_;
  std::uint64_t nr_data_;
  const Fn& fn_;
  const Grafts* grafts_;
};

Result<MappingWalk> walk_mappings(IoEngine& io, BlockAddr root, std::uint64_t nr_data,
                                  const MappingWalk::Fn& fn,
                                  const MappingWalk::Grafts* grafts = nullptr) {
  MappingWalk w(io, nr_data, fn, grafts);
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

void note_snapshot_not_mixed(const std::string& who, bool whole, std::vector<std::string>& notes) {
  if (whole)
    notes.push_back(who + ": the metadata snapshot holds an older version of its tree "
                    "(thin_dump -m); --use-metadata-snap takes it");
  else
    notes.push_back(who + ": the metadata snapshot holds an older version of the lost blocks "
                    "(thin_dump -m); it is not mixed into the current device");
}

bool whole_range(const std::vector<KeyRange>& lost) {
  for (const auto& r : lost)
    if (r.begin == 0 && !r.end) return true;
  return false;
}

// Where the user finds a value the metadata does not determine.
const char* where_to_find(const std::string& field) {
  if (field == "transaction id") return " (lvm2: `lvs -o+transaction_id VG/POOL`)";
  if (field == "data block size")
    return " (in sectors: `lvs -o+chunk_size VG/POOL`, or the pool's line of `dmsetup table`)";
  return " (the data device's size in data blocks: the pool's length in `dmsetup table` divided "
         "by its data block size)";
}

}  // namespace

Result<RepairStats> repair(IoEngine& io, const RepairOptions& opts, MetadataSink& out,
                           std::vector<std::string>& notes) {
  // The superblock: valid, or the fields of a damaged one that agree with the device.
  std::optional<Superblock> sb;
  bool sb_valid = false, dbs_known = false;
  if (auto r = read_superblock(io, 0)) {
    sb = *r;
    sb_valid = dbs_known = true;
  } else {
    std::vector<std::string> salvage_notes;
    if (auto s = salvage_superblock(io, salvage_notes)) {
      sb = s->sb;
      dbs_known = s->data_block_size_known;
      notes.push_back(r.error().what + "; using the fields that agree with the metadata");
      notes.insert(notes.end(), salvage_notes.begin(), salvage_notes.end());
    } else {
      notes.push_back(r.error().what + "; searching the device for the metadata trees");
    }
  }

  RootSearchOptions search;
  search.use_snapshot = opts.use_snapshot;
  search.superblock_damaged = sb && !sb_valid;
  auto roots = find_roots(io, sb, search);
  // Nothing to rebuild from: that is the one error (1.3.3's wording), whatever else is missing.
  if (!roots) {
    notes.clear();
    return std::unexpected(roots.error());
  }
  std::uint32_t dbs = dbs_known ? sb->data_block_size : 0;
  if (dbs < kMinDataBlockSize || dbs > kMaxDataBlockSize || dbs % kMinDataBlockSize) dbs = 0;
  if (!dbs && roots->held) {
    std::uint32_t h = roots->held->sb.data_block_size;
    if (h >= kMinDataBlockSize && h <= kMaxDataBlockSize && h % kMinDataBlockSize == 0) {
      dbs = h;
      if (!opts.data_block_size)
        notes.push_back("data block size " + std::to_string(dbs) +
                        " taken from the metadata snapshot's copy of the superblock");
    }
  }
  if (!dbs && roots->held_data_block_size) {
    dbs = roots->held_data_block_size;
    if (!opts.data_block_size)
      notes.push_back("data block size " + std::to_string(dbs) +
                      " taken from a metadata snapshot copy of the superblock");
  }
  {
    std::string missing;
    auto need = [&](bool have, const std::string& field) {
      if (have) return;
      if (!missing.empty()) missing += "\n";
      missing += "The following field needs to be provided on the command line due to "
                 "corruption in the superblock: ";
      missing += field;
      missing += where_to_find(field);
    };
    need(sb || opts.trans_id.has_value(), "transaction id");
    need(opts.data_block_size || dbs, "data block size");
    need(sb || opts.nr_data_blocks.has_value(), "nr data blocks");
    if (!missing.empty()) return fail(Errc::kInvalidArgument, missing);
  }
  for (auto& n : roots->notes) notes.push_back(n);

  // The data device size: a valid superblock's when it covers what its own space map says is
  // allocated; else (damaged or implausible) checked against the highest mapped data block.
  bool nr_trusted = opts.nr_data_blocks || (sb_valid && sb->data_sm.nr_blocks > 0 &&
                                            sb->data_sm.nr_blocks >= sb->data_sm.nr_allocated);
  std::uint64_t nr_data = opts.nr_data_blocks.value_or(nr_trusted ? sb->data_sm.nr_blocks : 0);
  std::uint64_t max_data = 0;
  bool any_data = false;

  // Pass 1: what each device still has, so details (mapped_blocks) precede the mappings.
  RepairStats stats;
  stats.searched = roots->searched;
  std::uint32_t max_time = roots->max_time;
  auto note_mapping = [&](const Mapping& m) -> Result<> {
    max_time = std::max(max_time, m.time);
    max_data = std::max(max_data, m.data);
    any_data = true;
    return {};
  };
  // Recreated details make the pool time one more than the newest mapping's: every mapping's
  // time is needed before the first device is emitted.
  bool recreated = false;
  for (const auto& [id, dev] : roots->devices) recreated |= dev.details_synthesized;
  std::vector<DevicePlan> plans;
  for (auto& [id, dev] : roots->devices) {
    if (!opts.dev_ids.empty() &&
        std::find(opts.dev_ids.begin(), opts.dev_ids.end(), id) == opts.dev_ids.end())
      continue;
    DevicePlan p{id, dev, {}, 0, 0};
    const std::string who = "thin device " + std::to_string(id);
    // Walked once, in pass 2 (its notes are made there).
    p.walk_once = opts.sink_counts_mappings && !opts.skip_mappings && sb_valid && nr_trusted &&
                  !recreated && !opts.use_snapshot &&
                  dev.root && !dev.root_from_snapshot;
    if (p.walk_once) {
      plans.push_back(std::move(p));
      continue;
    }
    if (dev.root) {
      std::uint64_t n = 0;
      MappingWalk::Grafts grafts = [&, id](BlockAddr d) -> std::vector<BlockAddr> {
        if (dev.root_from_snapshot) return {};
        const Orphans* o = find_orphans(io, sb, *roots);
        return o ? o->grafts(id, d) : std::vector<BlockAddr>{};
      };
      THINMETA_TRY(MappingWalk w, walk_mappings(io, *dev.root, nr_data, [&](const Mapping& m) {
                     ++n;
                     return note_mapping(m);
                   }, &grafts));
      p.lost = w.lost;
      p.live = n;
      note_walk(who, w, notes);
      if (whole_range(w.lost) && n == 0 && !dev.root_from_snapshot) {
        p.dev.root.reset();  // nothing of the live tree is left
        p.lost = {KeyRange{}};
      }
      stats.dropped += w.dropped;
      stats.from_orphans += w.grafted;
      if (dev.root_from_snapshot) {
        p.from_snapshot = n, p.live = 0;
        notes.push_back(who + ": " + std::to_string(n) + " mappings taken from the metadata "
                        "snapshot's tree (as they were when it was taken)");
      }
    } else {
      p.lost.push_back(KeyRange{});
      notes.push_back(who + ": its mapping tree is lost");
    }
    // The held snapshot stands in only for a device whose whole live tree is lost, and only
    // when asked for. Filling a lost range inside a live tree from it would mix an older
    // version of some blocks into the current device, silently: report the range as lost.
    if (!p.lost.empty() && dev.snapshot_root && !dev.root_from_snapshot &&
        (p.dev.root || !opts.use_snapshot))
      note_snapshot_not_mixed(who, !p.dev.root, notes);
    if (!p.lost.empty() && !p.dev.root && dev.snapshot_root && opts.use_snapshot) {
      std::uint64_t n = 0;
      THINMETA_TRY(MappingWalk w, walk_mappings(io, *dev.snapshot_root, nr_data,
                                                [&](const Mapping& m) -> Result<> {
                                                  if (!in_ranges(p.lost, m.key)) return {};
                                                  ++n;
                                                  return note_mapping(m);
                                                }));
      p.from_snapshot = n;
      if (n)
        notes.push_back(who + ": its tree is lost; " + std::to_string(n) +
                        " mappings taken from the metadata snapshot (as they were when it "
                        "was taken)");
    }
    plans.push_back(std::move(p));
  }
  if (roots->orphans)
    for (const auto& n : roots->orphans->notes()) notes.push_back(n);

  SuperblockInfo info;
  bool synthesized = false;
  for (const auto& p : plans) synthesized |= p.dev.details_synthesized;
  // Time: never below a mapping's or a device's; one more when details were recreated (their
  // snapshot time is the pool time: every older mapping then counts as shared).
  std::uint32_t min_time = max_time + (synthesized ? 1 : 0);
  info.time = sb ? std::max(sb->time, min_time) : min_time;
  if (sb && sb->time < min_time && !sb_valid)
    notes.push_back("pool time " + std::to_string(info.time) + " (the damaged superblock said " +
                    std::to_string(sb->time) + ", older than the metadata)");
  else if (sb && sb->time < min_time)
    notes.push_back("pool time raised from " + std::to_string(sb->time) + " to " +
                    std::to_string(info.time) + " (mappings or devices are newer)");
  // Transaction id: a damaged superblock's when the devices and the held snapshot are not
  // newer; else the newest of theirs.
  std::uint64_t trans = sb ? sb->trans_id : 0;
  if (sb && !sb_valid && !opts.trans_id) {
    std::uint64_t floor = roots->held ? roots->held->sb.trans_id : 0;
    for (const auto& p : plans)
      if (!p.dev.details_synthesized) floor = std::max(floor, p.dev.details.transaction_id);
    if (trans < floor) {
      notes.push_back("transaction id " + std::to_string(floor) +
                      " taken from the device details (the damaged superblock said " +
                      std::to_string(trans) + "); check it" + where_to_find("transaction id"));
      trans = floor;
    }
  }
  info.trans_id = opts.trans_id.value_or(trans);
  info.data_block_size = opts.data_block_size.value_or(dbs);
  if (!nr_trusted) {
    // Only bounded by the metadata (the highest mapped block below, the bitmaps above), and a
    // value too large stops the kernel from loading the pool while one too small is grown to
    // the data device at activation: the lower bound.
    std::uint64_t raw = sb ? sb->data_sm.nr_blocks : 0;
    nr_data = std::max<std::uint64_t>(any_data ? max_data + 1 : 0, 1);
    if (raw != nr_data)
      notes.push_back("nr data blocks " + std::to_string(nr_data) +
                      ": one past the highest mapped data block (the damaged superblock said " +
                      std::to_string(raw) + "); the kernel grows the pool to its data device "
                      "when it is activated, or give --nr-data-blocks" +
                      where_to_find("nr data blocks"));
  }
  info.nr_data_blocks = nr_data;
  info.flags = sb_valid && !opts.clear_needs_check ? sb->flags : 0;
  info.version = 2;

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
    if (p.dev.details_older) {
      // Its snapshot time may have moved on since: the pool time is safe (older mappings
      // count as shared).
      di.details.snapshotted_time = std::max(di.details.snapshotted_time, info.time);
      notes.push_back("thin device " + std::to_string(p.id) +
                      ": details lost; taken from an older copy (the metadata snapshot's), "
                      "mapped_blocks from its mapping tree");
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
        const std::uint64_t id = p.id;
        const bool from_snapshot = p.dev.root_from_snapshot;
        MappingWalk::Grafts grafts = [&, id, from_snapshot](BlockAddr d) -> std::vector<BlockAddr> {
          if (from_snapshot) return {};
          const Orphans* o = find_orphans(io, sb, *roots);
          return o ? o->grafts(id, d) : std::vector<BlockAddr>{};
        };
        THINMETA_TRY(MappingWalk w, walk_mappings(io, *p.dev.root, nr_data,
                                                  [&](const Mapping& m) -> Result<> {
                                                    while (next < fill.size() && fill[next].key < m.key)
                                                      THINMETA_CHECK(emit(fill[next++]));
                                                    ++n;
                                                    return emit(m);
                                                  }, &grafts));
        if (p.walk_once) {
          const std::string who = "thin device " + std::to_string(p.id);
          note_walk(who, w, notes);
          if (!w.lost.empty() && p.dev.snapshot_root)
            note_snapshot_not_mixed(who, whole_range(w.lost) && n == 0, notes);
          stats.dropped += w.dropped;
          stats.mappings += n;
          stats.from_orphans += w.grafted;
          if (w.grafted && roots->orphans)
            for (const auto& line : roots->orphans->notes()) notes.push_back(line);
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
