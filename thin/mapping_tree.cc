// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

using pdata::NodeContext;
using pdata::NodeView;

namespace {

// The leaves of a tree whose values are value_size bytes, each handed to fn.
Flow walk_leaves(pdata::IoEngine& io, BlockAddr root, std::uint32_t value_size,
                 const MappingLeafFn& fn, const DamageFn& damage) {
  LeafFnVisitor v(fn, damage);
  pdata::WalkOptions o;
  o.leaf_value_size = value_size;
  return pdata::walk_btree(io, root, o, v);
}

}  // namespace

Flow walk_details(pdata::IoEngine& io, BlockAddr root, const DetailsFn& fn,
                  const DamageFn& damage) {
  return walk_leaves(io, root, kDetailsValueSize, [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
      if (fn(n.key(i), decode_details(n.value(i))) == Flow::kStop) return Flow::kStop;
    return Flow::kContinue;
  }, damage);
}

Flow walk_device_roots(pdata::IoEngine& io, BlockAddr root, const DeviceRootFn& fn,
                       const DamageFn& damage) {
  return walk_leaves(io, root, kMappingValueSize, [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
      if (fn(n.key(i), n.value64(i)) == Flow::kStop) return Flow::kStop;
    return Flow::kContinue;
  }, damage);
}

Flow walk_mapping_leaves(pdata::IoEngine& io, BlockAddr subtree_root, const MappingLeafFn& fn,
                         const DamageFn& damage) {
  return walk_leaves(io, subtree_root, kMappingValueSize, fn, damage);
}

}  // namespace thinmeta::thin
