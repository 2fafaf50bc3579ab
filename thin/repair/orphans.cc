// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/orphans.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/space_map/space_map_reader.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

constexpr unsigned kMaxDepth = 16;

enum class Level { kTop, kBottom, kDetails };

struct DamagedNode {
  Level level = Level::kBottom;
  KeyRange range;
  std::set<std::uint64_t> devs;  // live devices whose tree reaches it (bottom level)
  bool live = false;
};

bool contains(const KeyRange& r, std::uint64_t lo, std::uint64_t hi) {
  return lo >= r.begin && (!r.end || hi < *r.end);
}

std::string range_str(const KeyRange& r) {
  return "[" + std::to_string(r.begin) + ", " + (r.end ? std::to_string(*r.end) : "end") + ")";
}

class CountCollector final : public SpaceMapVisitor {
 public:
  void uses(BlockAddr) override {}
  void damage(const std::string&) override {}
};

class Finder {
 public:
  Finder(IoEngine& io, const NodeScan& scan) : io_(io), scan_(scan) {}

  bool read_counts(const SmRoot& root) {
    if (!root.nr_blocks || root.bitmap_root == 0 || root.bitmap_root >= io_.nr_blocks())
      return false;
    CountCollector v;
    SpaceMapReader r(io_, root, SpaceMapKind::kMetadata, io_.nr_blocks(), v);
    std::uint64_t n = std::min<std::uint64_t>(root.nr_blocks, kMaxMetadataBlocks);
    counts_.assign(n, 0);
    known_.assign(n, false);
    bool any = false;
    r.for_each_bitmap([&](std::uint64_t first, std::span<const std::uint32_t> c, bool valid) {
      if (!valid) return;
      any = true;
      for (std::size_t i = 0; i < c.size() && first + i < n; ++i) {
        counts_[first + i] = c[i];
        known_[first + i] = true;
      }
    });
    return any;
  }

  void root(BlockAddr b, Level lvl, bool live) {
    if (!b) return;
    ++explained_[b];
    visit(b, lvl, KeyRange{}, 0, live, 0);
  }

  // Visits node b of tree level `lvl` (device `dev` for bottom-level nodes of a live tree).
  void visit(BlockAddr b, Level lvl, const KeyRange& range, std::uint64_t dev, bool live,
             unsigned depth) {
    const ScannedNode* n = scan_.node(b);
    bool ok = n && depth < kMaxDepth &&
              (n->internal || n->value_size == (lvl == Level::kDetails ? kDetailsValueSize : 8u)) &&
              (!n->internal || n->ptrs.size() == n->nr) &&
              (n->internal || lvl != Level::kTop || n->ptrs.size() == n->nr);
    if (!ok) {
      DamagedNode& d = damaged_[b];
      if (d.devs.empty() && !d.live) d.level = lvl, d.range = range;
      if (live) {
        d.live = true;
        if (lvl == Level::kBottom) d.devs.insert(dev);
      }
      return;
    }
    // The references a node holds are counted once; trees are followed again for each live
    // device (damage is noted per device) and once for the held snapshot.
    bool first = explained_nodes_.insert(b).second;
    if (first && (n->internal || lvl == Level::kTop))
      for (BlockAddr c : n->ptrs) ++explained_[c];
    if (!n->internal && lvl != Level::kTop) return;
    bool again = live ? (lvl == Level::kBottom ? seen_.insert({dev, b}).second
                                               : live_nodes_.insert(b).second)
                      : first;
    if (!again) return;
    for (std::size_t i = 0; i < n->ptrs.size(); ++i) {
      BlockAddr c = n->ptrs[i];
      if (n->internal) {
        KeyRange r{n->keys[i], i + 1 < n->keys.size() ? std::optional<std::uint64_t>(n->keys[i + 1])
                                                      : range.end};
        visit(c, lvl, r, dev, live, depth + 1);
      } else {  // a top-level leaf: device id -> mapping tree
        visit(c, Level::kBottom, KeyRange{}, n->keys[i], live, 0);
      }
    }
  }

  // Valid nodes whose count exceeds the references the intact nodes explain, and that no
  // other such node (outside the intact trees) references: (block, unexplained references).
  std::vector<std::pair<BlockAddr, std::uint32_t>> orphan_roots() const {
    std::unordered_map<BlockAddr, std::uint32_t> under;  // references from unreached candidates
    std::vector<BlockAddr> cands;
    for (const auto& [b, n] : scan_.nodes()) {
      if (b >= counts_.size() || !known_[b] || counts_[b] == 0) continue;
      if (n.kind != TreeKind::kBottom && n.kind != TreeKind::kTop && n.kind != TreeKind::kDetails)
        continue;
      if (counts_[b] > explained(b)) cands.push_back(b);
    }
    for (BlockAddr b : cands) {
      const ScannedNode* n = scan_.node(b);
      if (explained_nodes_.count(b)) continue;  // reached: its children are explained
      if (n->internal || n->kind == TreeKind::kTop)
        for (BlockAddr c : n->ptrs) ++under[c];
      if (n->internal && n->kind == TreeKind::kDetails)
        for (BlockAddr c : n->ptrs) ++under[c];
    }
    std::vector<std::pair<BlockAddr, std::uint32_t>> out;
    for (BlockAddr b : cands) {
      std::uint32_t e = explained(b) + (under.count(b) ? under.at(b) : 0);
      if (counts_[b] > e) out.emplace_back(b, counts_[b] - e);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // The keys a bottom-level subtree holds: [first, last] (nothing when it is empty or
  // damaged).
  std::optional<std::pair<std::uint64_t, std::uint64_t>> span(BlockAddr b, unsigned depth = 0) const {
    const ScannedNode* n = scan_.node(b);
    if (!n || !n->nr || depth >= kMaxDepth) return std::nullopt;
    if (!n->internal) return std::make_pair(n->first_key, n->last_key);
    auto last = span(n->ptrs.back(), depth + 1);
    if (!last) return std::nullopt;
    return std::make_pair(n->first_key, last->second);
  }

  std::uint64_t entries(BlockAddr b, unsigned depth = 0) const {
    const ScannedNode* n = scan_.node(b);
    if (!n || depth >= kMaxDepth) return 0;
    if (!n->internal) return n->nr;
    std::uint64_t c = 0;
    for (BlockAddr k : n->ptrs) c += entries(k, depth + 1);
    return c;
  }

  void leaves_under(BlockAddr b, std::vector<BlockAddr>& out, unsigned depth = 0) const {
    const ScannedNode* n = scan_.node(b);
    if (!n || depth >= kMaxDepth) return;
    if (!n->internal) {
      out.push_back(b);
      return;
    }
    for (BlockAddr c : n->ptrs) leaves_under(c, out, depth + 1);
  }

  // Top-level entries (device id -> tree) under an orphaned top-level node.
  void top_entries(BlockAddr b, std::map<std::uint64_t, BlockAddr>& out, unsigned depth = 0) const {
    const ScannedNode* n = scan_.node(b);
    if (!n || depth >= kMaxDepth || n->ptrs.size() != n->nr) return;
    for (std::size_t i = 0; i < n->ptrs.size(); ++i) {
      if (n->internal) top_entries(n->ptrs[i], out, depth + 1);
      else out.emplace(n->keys[i], n->ptrs[i]);
    }
  }

  std::uint32_t explained(BlockAddr b) const {
    auto it = explained_.find(b);
    return it == explained_.end() ? 0 : it->second;
  }

  const std::map<BlockAddr, DamagedNode>& damaged() const { return damaged_; }
  const ScannedNode* node(BlockAddr b) const { return scan_.node(b); }

 private:
  IoEngine& io_;
  const NodeScan& scan_;
  std::vector<std::uint32_t> counts_;
  std::vector<bool> known_;
  std::unordered_map<BlockAddr, std::uint32_t> explained_;
  std::unordered_set<BlockAddr> explained_nodes_, live_nodes_;
  std::set<std::pair<std::uint64_t, BlockAddr>> seen_;
  std::map<BlockAddr, DamagedNode> damaged_;
};

}  // namespace

std::optional<Orphans> Orphans::find(IoEngine& io, const NodeScan& scan, const SmRoot& metadata_sm,
                                     const TreeRoots& live, const std::optional<TreeRoots>& held,
                                     const std::map<std::uint64_t, DeviceDetails>& details) {
  Finder f(io, scan);
  if (!f.read_counts(metadata_sm)) return std::nullopt;
  f.root(live.top, Level::kTop, true);
  f.root(live.details, Level::kDetails, true);
  if (held) {
    f.root(held->top, Level::kTop, false);
    f.root(held->details, Level::kDetails, false);
  }
  Orphans out;
  bool top_damaged = false;
  for (const auto& [b, d] : f.damaged())
    if (d.live && d.level == Level::kTop) top_damaged = true;

  // Bottom-level orphans: in place of the one damaged node whose key range holds them.
  std::vector<std::pair<BlockAddr, std::uint32_t>> unplaced;
  std::map<BlockAddr, std::vector<std::pair<std::uint64_t, BlockAddr>>> by_damaged;  // first key
  std::set<BlockAddr> ambiguous_damaged;
  for (auto [o, unexplained] : f.orphan_roots()) {
    const ScannedNode* n = f.node(o);
    if (n->kind == TreeKind::kDetails) {
      f.leaves_under(o, out.details_leaves_);
      continue;
    }
    if (n->kind == TreeKind::kTop) {
      if (!top_damaged) continue;
      std::map<std::uint64_t, BlockAddr> entries;
      f.top_entries(o, entries);
      for (const auto& [dev, r] : entries) {
        bool lost = false;
        for (const auto& [b, d] : f.damaged())
          lost |= d.live && d.level == Level::kTop && contains(d.range, dev, dev);
        if (lost && details.count(dev)) out.device_roots_.emplace(dev, r);
      }
      continue;
    }
    auto s = f.span(o);
    std::vector<BlockAddr> fits;
    if (s)
      for (const auto& [b, d] : f.damaged())
        if (d.live && d.level == Level::kBottom && contains(d.range, s->first, s->second))
          fits.push_back(b);
    if (fits.size() == 1) {
      by_damaged[fits[0]].emplace_back(s->first, o);
    } else if (fits.size() > 1) {
      out.notes_.push_back("node " + std::to_string(o) + " (mappings of blocks " +
                           std::to_string(s->first) + ".." + std::to_string(s->second) +
                           ") fits more than one damaged node: left out");
    } else {
      unplaced.emplace_back(o, unexplained);
    }
  }
  for (auto& [b, list] : by_damaged) {
    std::sort(list.begin(), list.end());
    bool overlap = false;
    for (std::size_t i = 1; i < list.size(); ++i) {
      auto prev = f.span(list[i - 1].second);
      overlap |= prev->second >= list[i].first;
    }
    const DamagedNode& d = f.damaged().at(b);
    if (overlap) {
      out.notes_.push_back("orphaned nodes under damaged node " + std::to_string(b) +
                           " overlap: mappings of blocks " + range_str(d.range) + " left lost");
      continue;
    }
    std::vector<BlockAddr> roots;
    std::uint64_t n = 0;
    for (auto& [k, o] : list) roots.push_back(o), n += f.entries(o);
    for (std::uint64_t dev : d.devs) {
      out.grafts_[{dev, b}] = roots;
      out.notes_.push_back("thin device " + std::to_string(dev) + ": " + std::to_string(n) +
                           " mappings of blocks " + range_str(d.range) + " under damaged node " +
                           std::to_string(b) + " found in " + std::to_string(roots.size()) +
                           " orphaned subtree(s) the metadata space map still counts");
    }
  }

  // Device roots a damaged top-level node held: unplaced bottom-level orphans, matched by
  // mapped_blocks; a device with one candidate takes it (a candidate serves at most as many
  // devices as it has unexplained references).
  if (top_damaged) {
    std::map<BlockAddr, std::uint32_t> left;
    std::map<BlockAddr, std::uint64_t> sizes;
    for (auto [o, u] : unplaced) left[o] = u, sizes[o] = f.entries(o);
    std::map<BlockAddr, std::vector<std::uint64_t>> claims;
    for (const auto& [dev, det] : details) {
      if (out.device_roots_.count(dev)) continue;
      bool lost = false;
      for (const auto& [b, d] : f.damaged())
        lost |= d.live && d.level == Level::kTop && contains(d.range, dev, dev);
      if (!lost) continue;
      std::vector<BlockAddr> c;
      for (const auto& [o, sz] : sizes)
        if (sz == det.mapped_blocks) c.push_back(o);
      if (c.size() == 1) claims[c[0]].push_back(dev);
      else
        out.notes_.push_back("thin device " + std::to_string(dev) + ": " +
                             (c.empty() ? std::string("no orphaned tree of its size (") +
                                              std::to_string(det.mapped_blocks) + " mappings)"
                                        : std::to_string(c.size()) +
                                              " orphaned trees of its size: ambiguous"));
    }
    for (const auto& [o, devs] : claims) {
      if (devs.size() > left[o]) {
        out.notes_.push_back("orphaned tree at node " + std::to_string(o) + " fits " +
                             std::to_string(devs.size()) + " devices: ambiguous, left out");
        continue;
      }
      for (std::uint64_t dev : devs) out.device_roots_.emplace(dev, o);
    }
    for (const auto& [dev, r] : out.device_roots_)
      out.notes_.push_back("thin device " + std::to_string(dev) +
                           ": its top-level entry was damaged; mapping tree at orphaned node " +
                           std::to_string(r));
  }
  return out;
}

std::vector<BlockAddr> Orphans::grafts(std::uint64_t dev, BlockAddr damaged) const {
  auto it = grafts_.find({dev, damaged});
  return it == grafts_.end() ? std::vector<BlockAddr>{} : it->second;
}

std::optional<BlockAddr> Orphans::device_root(std::uint64_t dev) const {
  auto it = device_roots_.find(dev);
  if (it == device_roots_.end()) return std::nullopt;
  return it->second;
}

}  // namespace thinmeta::thin
