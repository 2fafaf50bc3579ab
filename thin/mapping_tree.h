// SPDX-License-Identifier: GPL-3.0-or-later
// Walks over the thin trees (FORMAT.md §6): the device-details tree, the top level of the
// mapping tree (dev id -> subtree root) and one device's bottom-level tree. All are thin
// adapters over pdata::walk_btree: callbacks get decoded values in key order, damage goes to
// a damage callback that decides whether to go on.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "persistent-data/btree/btree_walker.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

using pdata::BlockAddr;
using pdata::Damage;
using pdata::Flow;

using DamageFn = std::function<Flow(const Damage&)>;
using DetailsFn = std::function<Flow(std::uint64_t dev_id, const DeviceDetails&)>;
using DeviceRootFn = std::function<Flow(std::uint64_t dev_id, BlockAddr subtree_root)>;
// A leaf's worth of mappings: keys[i] -> block_time values[i], ascending.
using MappingLeafFn = std::function<Flow(const pdata::NodeContext& at, const pdata::NodeView& leaf)>;

Flow walk_details(pdata::IoEngine& io, BlockAddr root, const DetailsFn& fn,
                  const DamageFn& damage);
Flow walk_device_roots(pdata::IoEngine& io, BlockAddr root, const DeviceRootFn& fn,
                       const DamageFn& damage);
Flow walk_mapping_leaves(pdata::IoEngine& io, BlockAddr subtree_root, const MappingLeafFn& fn,
                         const DamageFn& damage);

// Generic adapter: leaves and damage to std::function.
class LeafFnVisitor : public pdata::BtreeVisitor {
 public:
  LeafFnVisitor(const MappingLeafFn& leaf, const DamageFn& damage) : leaf_(leaf), damage_(damage) {}
  Flow leaf(const pdata::NodeContext& at, const pdata::NodeView& n) override {
    return leaf_(at, n);
  }
  Flow damage(const Damage& d) override { return damage_(d); }

 private:
  const MappingLeafFn& leaf_;
  const DamageFn& damage_;
};

}  // namespace thinmeta::thin
