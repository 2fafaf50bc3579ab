// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/root_search.h"

#include <algorithm>
#include <functional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "persistent-data/btree/btree_walker.h"
#include "thin/allocation_view.h"
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

using DetailsMap = std::map<std::uint64_t, DeviceDetails>;
using RootsMap = std::map<std::uint64_t, BlockAddr>;

struct Partial {
  bool clean = true;
  std::vector<KeyRange> lost;
};

// Reads a whole (dev id -> value) tree with `walk` (walk_details or walk_device_roots). Without
// `partial` any damage fails the read; with it, what could be read is kept and the lost key
// ranges are noted.
template <typename Map, typename Walk>
std::optional<Map> read_tree(Walk walk, Partial* partial) {
  Map m;
  bool clean = true;
  walk(
      [&](std::uint64_t id, const typename Map::mapped_type& v) {
        m.emplace(id, v);
        return Flow::kContinue;
      },
      [&](const Damage& d) {
        clean = false;
        if (partial) partial->lost.push_back(d.lost);
        return partial ? Flow::kContinue : Flow::kStop;
      });
  if (partial) partial->clean = clean;
  if (!clean && !partial) return std::nullopt;
  return m;
}

std::optional<DetailsMap> read_details(IoEngine& io, BlockAddr root, Partial* partial = nullptr) {
  return read_tree<DetailsMap>(
      [&](const DetailsFn& fn, const DamageFn& dmg) { walk_details(io, root, fn, dmg); }, partial);
}

std::optional<RootsMap> read_top(IoEngine& io, BlockAddr root, Partial* partial = nullptr) {
  return read_tree<RootsMap>(
      [&](const DeviceRootFn& fn, const DamageFn& dmg) { walk_device_roots(io, root, fn, dmg); },
      partial);
}

template <typename A, typename B>
bool same_ids(const std::map<std::uint64_t, A>& a, const std::map<std::uint64_t, B>& b) {
  if (a.size() != b.size()) return false;
  auto i = a.begin();
  for (auto j = b.begin(); j != b.end(); ++i, ++j)
    if (i->first != j->first) return false;
  return true;
}

// How recent a details tree looks: the newest device creation transaction, then time.
std::pair<std::uint64_t, std::uint32_t> recency(const DetailsMap& m) {
  std::uint64_t tr = 0;
  std::uint32_t t = 0;
  for (const auto& [id, d] : m) {
    tr = std::max(tr, d.transaction_id);
    t = std::max({t, d.creation_time, d.snapshotted_time});
  }
  return {tr, t};
}

// Collects the leaves of a top-level tree.
class TopNodes final : public BtreeVisitor {
 public:
  explicit TopNodes(std::unordered_set<BlockAddr>& out) : out_(out) {}
  Flow leaf(const NodeContext& c, const NodeView&) override {
    out_.insert(c.addr);
    return Flow::kContinue;
  }
  Flow damage(const Damage&) override { return Flow::kContinue; }

 private:
  std::unordered_set<BlockAddr>& out_;
};

class Search {
 public:
  Search(IoEngine& io, const std::optional<Superblock>& sb, const RootSearchOptions& opts)
      : io_(io), sb_(sb), use_snapshot_(opts.use_snapshot), sb_damaged_(opts.superblock_damaged) {}

  Result<RecoveredRoots> run();

 private:
  void scan();
  bool stale(BlockAddr b) const;
  bool in_newest_view(BlockAddr b) const;
  std::uint64_t count_entries(BlockAddr b, unsigned depth = 0);
  void choose_held();
  std::optional<DeviceDetails> details_from_leaves(std::uint64_t id, bool& older);
  void fill_subtree_roots(const RootsMap& top, const Partial& top_partial);

  IoEngine& io_;
  const std::optional<Superblock>& sb_;
  bool use_snapshot_;
  bool sb_damaged_;
  std::shared_ptr<NodeScan> scan_;
  std::vector<AllocationView> views_;
  std::unordered_map<BlockAddr, std::uint64_t> counts_;
  RecoveredRoots out_;
  RootsMap held_top_;
  std::unordered_set<BlockAddr> held_top_leaves_;  // nodes of the held snapshot's top level
  std::optional<std::map<std::uint64_t, std::pair<DeviceDetails, bool>>> leaf_details_;
};

// A device's details from the details leaves a damaged details node held (orphans.h), else
// from any details leaf still in use: an older copy (e.g. the held snapshot's), `older` set.
std::optional<DeviceDetails> Search::details_from_leaves(std::uint64_t id, bool& older) {
  if (!leaf_details_) {
    scan();
    leaf_details_.emplace();
    std::unordered_set<BlockAddr> current;
    if (sb_)
      if (const Orphans* o = find_orphans(io_, sb_, out_))
        current.insert(o->details_leaves().begin(), o->details_leaves().end());
    AlignedBuffer buf(1);
    for (BlockAddr b : scan_->leaves(TreeKind::kDetails)) {
      if (stale(b)) continue;
      if (read_node(io_, b, kDetailsValueSize, buf.data())) continue;
      NodeView v(buf.data());
      bool cur = current.count(b) > 0;
      for (std::uint32_t i = 0; i < v.nr_entries(); ++i) {
        DeviceDetails d = decode_details(v.value(i));
        auto [it, fresh] = leaf_details_->emplace(v.key(i), std::make_pair(d, cur));
        auto& [have, have_cur] = it->second;
        if (!fresh && std::make_tuple(cur, d.transaction_id, d.snapshotted_time) >
                          std::make_tuple(have_cur, have.transaction_id, have.snapshotted_time))
          it->second = {d, cur};
      }
    }
  }
  auto it = leaf_details_->find(id);
  if (it == leaf_details_->end()) return std::nullopt;
  older = !it->second.second;
  return it->second.first;
}

void Search::scan() {
  if (scan_) return;
  out_.searched = true;
  BlockAddr nr = io_.nr_blocks();
  if (sb_ && sb_->metadata_sm.nr_blocks) nr = std::min(nr, sb_->metadata_sm.nr_blocks);
  scan_ = std::make_shared<NodeScan>(NodeScan::run(io_, std::min<BlockAddr>(nr, kMaxMetadataBlocks)));
  out_.scan = scan_;
  if (sb_) {
    if (auto v = AllocationView::read(io_, sb_->metadata_sm.bitmap_root, sb_->metadata_sm.nr_blocks))
      views_.push_back(std::move(*v));
  } else {
    for (BlockAddr b : scan_->index_blocks())
      if (auto v = AllocationView::read(io_, b, io_.nr_blocks())) views_.push_back(std::move(*v));
  }
  // Superblock copies agree on the data block size unless something is badly wrong.
  std::uint32_t dbs = 0;
  bool agree = true;
  for (const auto& c : scan_->superblock_copies()) {
    if (dbs && dbs != c.sb.data_block_size) agree = false;
    dbs = c.sb.data_block_size;
  }
  if (agree) out_.held_data_block_size = dbs;
}

// Allocated in the newest view of the metadata space map: the superblock's, or else the index
// block at the highest address (the kernel allocates with a cursor that moves up the device, so
// each commit's new blocks lie above the previous commit's until the cursor wraps).
bool Search::in_newest_view(BlockAddr b) const {
  return views_.empty() || views_.back().state(b) != AllocationView::kFree;
}

// Free in every view of the metadata space map: left over from an older transaction.
bool Search::stale(BlockAddr b) const {
  if (views_.empty()) return false;
  for (const auto& v : views_)
    if (v.state(b) != AllocationView::kFree) return false;
  return true;
}

std::uint64_t Search::count_entries(BlockAddr b, unsigned depth) {
  if (auto it = counts_.find(b); it != counts_.end()) return it->second;
  const ScannedNode* n = scan_->node(b);
  std::uint64_t c = 0;
  if (n && n->kind == TreeKind::kBottom && depth < 20) {
    if (!n->internal) c = n->nr;
    else
      for (BlockAddr k : n->ptrs) c += count_entries(k, depth + 1);
  }
  counts_[b] = c;
  return c;
}

void Search::choose_held() {
  if (sb_) {
    if (sb_->held_root)
      if (auto h = read_superblock(io_, sb_->held_root)) out_.held = SuperblockCopy{sb_->held_root, *h};
  } else {
    scan();
    // Without a metadata space map a released (stale) snapshot cannot be told from a held one,
    // and a released snapshot's data blocks may have been reused: use none.
    for (const auto& c : scan_->superblock_copies()) {
      if (views_.empty() || stale(c.where)) continue;
      if (!out_.held || std::tie(c.sb.trans_id, c.sb.time) >
                            std::tie(out_.held->sb.trans_id, out_.held->sb.time))
        out_.held = c;
    }
  }
  if (out_.held) {
    Partial p;
    if (auto t = read_top(io_, out_.held->sb.data_mapping_root, &p)) held_top_ = *t;
    TopNodes nodes(held_top_leaves_);
    WalkOptions o;
    o.check_fill = false;
    walk_btree(io_, out_.held->sb.data_mapping_root, o, nodes);
    out_.max_time = std::max(out_.max_time, out_.held->sb.time);
  }
}

Result<RecoveredRoots> Search::run() {
  std::optional<DetailsMap> sb_details;
  std::optional<RootsMap> sb_top;
  Partial d_partial, t_partial;
  std::optional<DetailsMap> d_part;
  std::optional<RootsMap> t_part;
  if (sb_) {
    d_part = read_details(io_, sb_->device_details_root, &d_partial);
    t_part = read_top(io_, sb_->data_mapping_root, &t_partial);
    if (d_partial.clean) sb_details = d_part;
    if (t_partial.clean) sb_top = t_part;
  }
  choose_held();
  auto held_d = out_.held ? out_.held->sb.device_details_root : BlockAddr(0);
  auto held_t = out_.held ? out_.held->sb.data_mapping_root : BlockAddr(0);

  std::optional<DetailsMap> details;
  std::optional<RootsMap> top;
  // A damaged superblock's roots that walk cleanly but list different devices: one of them is
  // the damaged pointer, landing on another tree's node (a mapping tree's, say). Both go into
  // the search as candidates beside the trees it finds.
  const bool disagree = sb_damaged_ && sb_details && sb_top && !same_ids(*sb_details, *sb_top);
  if (disagree)
    out_.notes.push_back("the damaged superblock's device details tree (block " +
                         std::to_string(sb_->device_details_root) + ") and mapping tree (block " +
                         std::to_string(sb_->data_mapping_root) +
                         ") list different devices; searching for the pair that agrees");
  if (sb_details && sb_top && !disagree) {
    details = sb_details, top = sb_top;
    out_.details_root = sb_->device_details_root, out_.mapping_root = sb_->data_mapping_root;
  } else {
    scan();
    std::vector<std::pair<BlockAddr, DetailsMap>> dc;
    std::vector<std::pair<BlockAddr, RootsMap>> tc;
    if (sb_details) dc.emplace_back(sb_->device_details_root, *sb_details);
    if (!sb_details || disagree)
      for (BlockAddr b : scan_->roots(TreeKind::kDetails))
        if (!stale(b) && b != held_d && !(sb_details && b == sb_->device_details_root))
          if (auto m = read_details(io_, b)) dc.emplace_back(b, std::move(*m));
    if (sb_top) tc.emplace_back(sb_->data_mapping_root, *sb_top);
    if (!sb_top || disagree)
      for (BlockAddr b : scan_->roots(TreeKind::kTop))
        if (!stale(b) && b != held_t && !(sb_top && b == sb_->data_mapping_root))
          if (auto m = read_top(io_, b)) tc.emplace_back(b, std::move(*m));
    // Best pair: same devices; then allocated in the newest space-map view; all mapped_blocks
    // consistent; newest (creation transaction, then time). Trees of equal age (a deletion or
    // writes leave no newer id or time behind) are told apart by the allocation cursor: the
    // higher roots were written later.
    using Score = std::tuple<bool, bool, std::uint64_t, std::uint32_t, BlockAddr>;
    std::optional<Score> best;
    for (auto& [db, dm] : dc)
      for (auto& [tb, tm] : tc) {
        if (!same_ids(dm, tm)) continue;
        std::size_t ok = 0;
        for (auto& [id, d] : dm) {
          std::uint64_t c = count_entries(tm[id]);
          ok += c == d.mapped_blocks;
        }
        auto [tr, t] = recency(dm);
        Score s{in_newest_view(db) && in_newest_view(tb), ok == dm.size(), tr, t,
                std::max(db, tb)};
        if (!best || s > *best) {
          best = s;
          details = dm, top = tm;
          out_.details_root = db, out_.mapping_root = tb;
        }
      }
    if (details && (!sb_details || *out_.details_root != sb_->device_details_root))
      out_.notes.push_back("device details tree damaged; the details of " +
                           std::to_string(details->size()) + " devices taken from the tree at block " +
                           std::to_string(*out_.details_root));
    if (top && (!sb_top || *out_.mapping_root != sb_->data_mapping_root))
      out_.notes.push_back("top level of the mapping tree damaged; the tree at block " +
                           std::to_string(*out_.mapping_root) + " taken instead");
    if (!details) {
      // No consistent pair: merge what is left of the live trees with every candidate still in
      // use (the children of a lost root are candidates of their own). Stale candidates are
      // only excluded when a metadata space map was found, so merge only then.
      bool merge = !views_.empty();
      RootsMap t = t_part ? *t_part : RootsMap{};
      if (merge || t.empty())
        for (auto& [b, m] : tc) {
          if (!merge && m.size() <= t.size()) continue;
          if (!merge) t.clear(), out_.mapping_root = b;
          t.insert(m.begin(), m.end());
        }
      if (!t.empty()) top = std::move(t);
      if (sb_details) {
        details = sb_details;
        out_.details_root = sb_->device_details_root;
      } else {
        DetailsMap d = d_part ? *d_part : DetailsMap{};
        if (merge)
          for (auto& [b, m] : dc) d.insert(m.begin(), m.end());
        if (!d.empty() && (merge || d_part)) {
          details = std::move(d);
          out_.notes.push_back("device details tree damaged; devices missing from it are taken "
                               "from the mapping tree");
        } else if (!top && !dc.empty()) {
          auto it = std::max_element(dc.begin(), dc.end(), [&](const auto& x, const auto& y) {
            return std::make_tuple(in_newest_view(x.first), recency(x.second), x.first) <
                   std::make_tuple(in_newest_view(y.first), recency(y.second), y.first);
          });
          details = it->second;
          out_.details_root = it->first;
        }
      }
    }
  }

  if (!details && !top) {
    // Both live trees are gone. The metadata snapshot is older: devices deleted since it was
    // taken would come back, so it only ever fills in for single devices.
    if (out_.held)
      return fail(Errc::kDamage, "no compatible roots found (an older copy is held as a "
                                 "metadata snapshot at block " +
                                     std::to_string(out_.held->where) + ": thin_dump -m)");
    return fail(Errc::kDamage, "no compatible roots found");
  }

  // The device list: the details tree; devices in its lost ranges (or all, when it is gone)
  // from the top level of the live mapping tree.
  bool details_whole = details && out_.details_root;
  if (details)
    for (const auto& [id, d] : *details) out_.devices[id].details = d;
  if (top)
    for (const auto& [id, r] : *top) {
      if (out_.devices.count(id)) continue;
      if (details_whole) {
        out_.notes.push_back("thin device " + std::to_string(id) +
                             " has mappings but no details: dropped");
        continue;
      }

      RecoveredDevice& dev = out_.devices[id];
      if (auto d = details_from_leaves(id, dev.details_older)) dev.details = *d;
      else dev.details_synthesized = true;
    }
  for (const auto& [id, dev] : out_.devices) {
    const auto& d = dev.details;
    out_.max_time = std::max({out_.max_time, d.creation_time, d.snapshotted_time});
  }
  bool sb_roots_clean = sb_ && d_partial.clean && t_partial.clean;
  if (out_.devices.empty() && !sb_roots_clean && !(details && out_.details_root))
    return fail(Errc::kDamage, "no compatible roots found");
  if (sb_ && (!t_partial.clean || !d_partial.clean)) find_orphans(io_, sb_, out_);
  fill_subtree_roots(top ? *top : RootsMap{}, t_partial);
  return std::move(out_);
}

void Search::fill_subtree_roots(const RootsMap& top, const Partial&) {
  for (auto& [id, dev] : out_.devices) {
    if (auto it = held_top_.find(id); it != held_top_.end()) dev.snapshot_root = it->second;
    if (auto it = top.find(id); it != top.end()) {
      dev.root = it->second;
      continue;
    }
    // The top level lost this device: an orphaned tree the damaged top-level node held
    // (orphans.h); without a metadata space map, every top-level leaf still in use that the
    // held snapshot does not reach; the metadata snapshot's older tree only when asked for.
    // Prefer a tree whose size matches the device's mapped_blocks.
    if (out_.orphans)
      if (auto r = out_.orphans->device_root(id)) {
        dev.root = *r;
        continue;
      }
    scan();
    std::optional<std::tuple<bool, bool, std::uint64_t>> best;
    auto consider = [&](BlockAddr r, bool from_snap) {
      std::uint64_t c = count_entries(r);
      std::tuple<bool, bool, std::uint64_t> s{!dev.details_synthesized && c == dev.details.mapped_blocks,
                                              !from_snap, c};
      if (!best || s > *best) {
        best = s;
        dev.root = r;
        dev.root_from_snapshot = from_snap;
      }
    };
    for (BlockAddr leaf : scan_->leaves(TreeKind::kTop)) {
      if (out_.orphans || stale(leaf) || held_top_leaves_.count(leaf)) continue;
      AlignedBuffer buf(1);
      if (read_node(io_, leaf, 8, buf.data())) continue;
      NodeView n(buf.data());
      for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
        if (n.key(i) == id && n.value64(i) != dev.snapshot_root.value_or(0))
          consider(n.value64(i), false);
    }
    if (dev.snapshot_root && use_snapshot_) consider(*dev.snapshot_root, true);
    if (dev.root)
      out_.notes.push_back("thin device " + std::to_string(id) + ": mapping tree found at block " +
                           std::to_string(*dev.root) +
                           (dev.root_from_snapshot ? " (metadata snapshot)" : ""));
  }
}

}  // namespace

Result<RecoveredRoots> find_roots(IoEngine& io, const std::optional<Superblock>& sb,
                                  const RootSearchOptions& opts) {
  Search s(io, sb, opts);
  return s.run();
}

const Orphans* find_orphans(IoEngine& io, const std::optional<Superblock>& sb,
                            RecoveredRoots& roots) {
  if (roots.orphans_searched) return roots.orphans.get();
  roots.orphans_searched = true;
  if (!sb || !sb->metadata_sm.bitmap_root) return nullptr;
  if (!roots.scan) {
    BlockAddr nr = io.nr_blocks();
    if (sb->metadata_sm.nr_blocks) nr = std::min(nr, sb->metadata_sm.nr_blocks);
    roots.scan = std::make_shared<NodeScan>(NodeScan::run(io, std::min<BlockAddr>(nr, kMaxMetadataBlocks)));
  }
  std::map<std::uint64_t, DeviceDetails> details;
  for (const auto& [id, d] : roots.devices)
    if (!d.details_synthesized) details.emplace(id, d.details);
  std::optional<TreeRoots> held;
  if (roots.held) held = TreeRoots{roots.held->sb.data_mapping_root, roots.held->sb.device_details_root};
  auto o = Orphans::find(io, *roots.scan, sb->metadata_sm,
                         TreeRoots{sb->data_mapping_root, sb->device_details_root}, held, details);
  if (o) roots.orphans = std::make_shared<const Orphans>(std::move(*o));
  return roots.orphans.get();
}

}  // namespace thinmeta::thin
