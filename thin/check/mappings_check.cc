// SPDX-License-Identifier: GPL-3.0-or-later
// Phase 3, every device's bottom-level mapping tree (FORMAT.md §5.3, §6.1, §8.2, §10).
// Checks: every node as in phase 2; data blocks < nr_data_blocks; times <= the pool time;
//   mapped_blocks in the details == the number of mappings (shared subtrees included).
// Collects: metadata references (a node reached again is counted, not walked again); data
//   references once per distinct leaf, so a leaf shared by snapshots counts once.
// Not checked: that snapshots' times are consistent with their origin's (the kernel does not
//   require it).
#include <new>

#include "thin/check/context.h"
#include "thin/check/leaf_runs.h"

namespace thinmeta::thin::check_detail {
namespace {

using pdata::Damage;
using pdata::Flow;
using pdata::NodeContext;
using pdata::NodeView;

class DeviceWalker final : public pdata::BtreeVisitor {
 public:
  DeviceWalker(Context& ctx, const Roots& roots, std::uint64_t id)
      : ctx_(ctx), roots_(roots), id_(id) {}

  bool enter(const NodeContext& c) override {
    if (ctx_.ref_meta(c.addr)) return true;
    total += ctx_.subtree_total(c.addr);  // shared: walked through another parent already
    return false;
  }
  Flow internal(const NodeContext& c, const NodeView& n) override {
    auto& kids = ctx_.children[c.addr];
    kids.clear();
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) kids.push_back(n.value64(i));
    return Flow::kContinue;
  }
  // Leaves are decoded where they are checksummed (worker threads); counted here, in order.
  bool prepares_leaves() const override { return true; }
  void prepare_leaf(const NodeContext&, const NodeView& n, std::uint8_t* area) const override {
    decode_leaf_runs(n, nr_data_, roots_.time, *new (area) LeafRuns);
  }
  Flow leaf_prepared(const NodeContext& c, const NodeView& n, const std::uint8_t* area) override {
    return count(c, n, *std::launder(reinterpret_cast<const LeafRuns*>(area)));
  }
  Flow leaf(const NodeContext& c, const NodeView& n) override {
    decode_leaf_runs(n, nr_data_, roots_.time, runs_);
    return count(c, n, runs_);
  }
  Flow damage(const Damage& d) override {
    damaged = true;
    ctx_.fatal(roots_.label + "thin device " + std::to_string(id_) + " is missing mappings " +
                   range_str(d.lost),
               d.what);
    return Flow::kContinue;
  }

  std::uint64_t total = 0;
  bool damaged = false;

 private:
  Flow count(const NodeContext& c, const NodeView& n, const LeafRuns& runs) {
    std::uint32_t nr = n.nr_entries();
    ctx_.note_leaf(c.addr, nr);
    total += nr;
    // Data references go in runs of consecutive blocks (one inc_range each).
    for (std::uint32_t r = 0; r < runs.nr_runs; ++r)
      ctx_.data_counts.inc_range(runs.runs[r].begin, runs.runs[r].len);
    if (!runs.beyond && !runs.newer) return Flow::kContinue;
    std::string dev = roots_.label + "thin device " + std::to_string(id_);
    if (runs.beyond)
      ctx_.fatal(dev + " has " + std::to_string(runs.beyond) +
                     " mappings beyond the data device in " + range_str(c.range),
                 "virtual block " + std::to_string(runs.first_beyond_key) +
                     " maps to data block " + std::to_string(runs.first_beyond.data_block) +
                     ", but the pool has " + std::to_string(ctx_.nr_data) +
                     " data blocks (btree node, block " + std::to_string(c.addr) + ")");
    if (runs.newer)
      ctx_.fatal(dev + " has " + std::to_string(runs.newer) + " mappings newer than the pool in " +
                     range_str(c.range),
                 "virtual block " + std::to_string(runs.first_newer_key) + " has time " +
                     std::to_string(runs.first_newer.time) + ", but the pool time is " +
                     std::to_string(roots_.time) + " (btree node, block " +
                     std::to_string(c.addr) + ")");
    return Flow::kContinue;
  }

  Context& ctx_;
  const Roots& roots_;
  std::uint64_t id_;
  const std::uint64_t nr_data_ = ctx_.nr_data;  // read by prepare_leaf on other threads
  LeafRuns runs_;                               // leaves not prepared (a root leaf)
};

}  // namespace

std::uint64_t Context::subtree_total(BlockAddr b, unsigned depth) {
  if (b < leaf_sizes.size() && leaf_sizes[b]) return leaf_sizes[b] - 1u;
  if (auto it = leaf_totals.find(b); it != leaf_totals.end()) return it->second;
  auto it = children.find(b);
  if (it == children.end() || depth > 16) return 0;  // damaged, or a cycle (reported)
  std::uint64_t sum = 0;
  for (BlockAddr k : it->second) sum += subtree_total(k, depth + 1);
  if (depth == 0) leaf_totals[b] = sum;  // memoise the tops of shared subtrees
  return sum;
}

void check_mappings(Context& ctx, const Roots& roots, const Devices& devs) {
  for (const auto& [id, dev] : devs) {
    if (!dev.subtree_root) continue;
    std::uint64_t total = 0;
    bool damaged = false;
    if (dev.counted) {
      DeviceWalker w(ctx, roots, id);
      pdata::WalkOptions o;
      o.leaf_value_size = kMappingValueSize;
      pdata::walk_btree(ctx.io, *dev.subtree_root, o, w);
      total = w.total;
      damaged = w.damaged;
    } else {
      // The top-level leaf naming this device was already walked (e.g. it is shared by the
      // live and held trees): its subtree has been checked and counted.
      if (!ctx.has_total(*dev.subtree_root) && !ctx.children.count(*dev.subtree_root))
        continue;  // damaged, reported when first walked
      total = ctx.subtree_total(*dev.subtree_root);
    }
    if (!damaged && dev.details && dev.details->mapped_blocks != total)
      ctx.fatal(roots.label + "thin device " + std::to_string(id) +
                    " has an unexpected number of mappings",
                "its details say " + std::to_string(dev.details->mapped_blocks) +
                    ", its mapping tree holds " + std::to_string(total));
  }
}

}  // namespace thinmeta::thin::check_detail
