// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

using pdata::NodeContext;
using pdata::NodeView;

Flow walk_details(pdata::IoEngine& io, BlockAddr root, const DetailsFn& fn,
                  const DamageFn& damage) {
  MappingLeafFn leaf = [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
      if (fn(n.key(i), decode_details(n.value(i))) == Flow::kStop) return Flow::kStop;
    return Flow::kContinue;
  };
  LeafFnVisitor v(leaf, damage);
  pdata::WalkOptions o;
  o.leaf_value_size = kDetailsValueSize;
  return pdata::walk_btree(io, root, o, v);
}

Flow walk_device_roots(pdata::IoEngine& io, BlockAddr root, const DeviceRootFn& fn,
                       const DamageFn& damage) {
  MappingLeafFn leaf = [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i)
      if (fn(n.key(i), n.value64(i)) == Flow::kStop) return Flow::kStop;
    return Flow::kContinue;
  };
  LeafFnVisitor v(leaf, damage);
  pdata::WalkOptions o;
  o.leaf_value_size = kMappingValueSize;
  return pdata::walk_btree(io, root, o, v);
}

Flow walk_mapping_leaves(pdata::IoEngine& io, BlockAddr subtree_root, const MappingLeafFn& fn,
                         const DamageFn& damage) {
  LeafFnVisitor v(fn, damage);
  pdata::WalkOptions o;
  o.leaf_value_size = kMappingValueSize;
  return pdata::walk_btree(io, subtree_root, o, v);
}

}  // namespace thinmeta::thin
