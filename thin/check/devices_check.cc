// SPDX-License-Identifier: GPL-3.0-or-later
// Phase 2, the device-details tree and the top level of the mapping tree (FORMAT.md §5.3,
// §6.1, §6.2), for the live trees and the held snapshot's.
// Checks: every node (checksum, self block number, type, value size, max_entries, nr_entries,
//   fill, key order, keys within the parent's range, no cycles, bounded depth); the same device
//   ids in both trees.
// Collects: each device's details and bottom-level root; one metadata reference per pointer
//   followed (a node reached again, e.g. shared by the live and held trees, gets its reference
//   but its children are not counted twice, FORMAT.md §8.1).
#include <unordered_map>

#include "thin/check/context.h"

namespace thinmeta::thin::check_detail {
namespace {

using pdata::Damage;
using pdata::Flow;
using pdata::NodeContext;
using pdata::NodeView;

// Counts references the way the kernel holds them: a node is reached once per parent pointer,
// but the pointers inside a node are counted only on its first visit (a node shared by the live
// and held trees is walked twice for its contents, counted once). internal() runs before any
// child of the node is visited, so it hands its children their credit.
class CountingVisitor : public pdata::BtreeVisitor {
 public:
  CountingVisitor(Context& ctx, BlockAddr root) : ctx_(ctx) {
    if (root < ctx.nr_meta && ctx.ref_meta(root)) ++credits_[root];
  }
  Flow internal(const NodeContext& c, const NodeView& n) override {
    if (take_credit(c.addr))
      for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
        BlockAddr kid = n.value64(i);
        if (kid < ctx_.nr_meta && ctx_.ref_meta(kid)) ++credits_[kid];
      }
    return Flow::kContinue;
  }
  Flow leaf(const NodeContext& c, const NodeView& n) override {
    return on_leaf(c, n, take_credit(c.addr));
  }
  virtual Flow on_leaf(const NodeContext& c, const NodeView& n, bool first_visit) = 0;

 private:
  bool take_credit(BlockAddr b) {
    auto it = credits_.find(b);
    if (it == credits_.end() || it->second == 0) return false;
    --it->second;
    return true;
  }
  Context& ctx_;
  std::unordered_map<BlockAddr, unsigned> credits_;
};

bool in_ranges(const std::vector<pdata::KeyRange>& rs, std::uint64_t k) {
  for (const auto& r : rs)
    if (k >= r.begin && (!r.end || k < *r.end)) return true;
  return false;
}

// Walks the details tree or the top level of the mapping tree (values of value_size bytes),
// counting references; each leaf goes to fn(node, first visit). Damage is fatal, reported as
// what_lost followed by the keys lost, which are returned.
template <typename LeafFn>
std::vector<pdata::KeyRange> walk_counted(Context& ctx, BlockAddr root, std::uint32_t value_size,
                                          const std::string& what_lost, LeafFn&& fn) {
  struct V final : CountingVisitor {
    V(Context& c, BlockAddr r, LeafFn& f, const std::string& w)
        : CountingVisitor(c, r), ctx(c), fn(f), what_lost(w) {}
    Flow on_leaf(const NodeContext&, const NodeView& n, bool first) override {
      fn(n, first);
      return Flow::kContinue;
    }
    Flow damage(const Damage& d) override {
      lost.push_back(d.lost);
      ctx.fatal(what_lost + range_str(d.lost), d.what);
      return Flow::kContinue;
    }
    Context& ctx;
    LeafFn& fn;
    const std::string& what_lost;
    std::vector<pdata::KeyRange> lost;
  } v(ctx, root, fn, what_lost);
  pdata::WalkOptions o;
  o.leaf_value_size = value_size;
  pdata::walk_btree(ctx.io, root, o, v);
  return std::move(v.lost);
}

}  // namespace

void check_details(Context& ctx, const Roots& roots, Devices& devs) {
  ctx.lost_details[roots.label] = walk_counted(
      ctx, roots.details_root, kDetailsValueSize, roots.label + "missing devices: ",
      [&](const NodeView& n, bool) {
        for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
          devs[n.key(i)].details = decode_details(n.value(i));
      });
}

void check_top_level(Context& ctx, const Roots& roots, Devices& devs) {
  const std::vector<pdata::KeyRange> lost = walk_counted(
      ctx, roots.mapping_root, kMappingValueSize, roots.label + "missing all mappings for devices: ",
      [&](const NodeView& n, bool first) {
        for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
          Device& dev = devs[n.key(i)];
          dev.subtree_root = n.value64(i);
          dev.counted = first;
        }
      });

  // Both trees must name the same devices (ids hidden by damage are already reported).
  const auto& lost_details = ctx.lost_details[roots.label];
  for (const auto& [id, dev] : devs) {
    if (dev.details && !dev.subtree_root && !in_ranges(lost, id))
      ctx.fatal(roots.label + "thin device " + std::to_string(id) +
                    " is in the device details tree but not in the mapping tree",
                "the two trees must hold the same device ids");
    if (!dev.details && dev.subtree_root && !in_ranges(lost_details, id))
      ctx.fatal(roots.label + "thin device " + std::to_string(id) +
                    " is in the mapping tree but not in the device details tree",
                "the two trees must hold the same device ids");
  }
}

std::string range_str(const pdata::KeyRange& r) {
  return "[" + std::to_string(r.begin) + ", " + (r.end ? std::to_string(*r.end) : "-") + "]";
}

}  // namespace thinmeta::thin::check_detail
