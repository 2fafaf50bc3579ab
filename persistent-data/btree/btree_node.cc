// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree/btree_node.h"

namespace thinmeta::pdata {

std::optional<std::string> check_node_shape(const NodeView& n, BlockAddr where,
                                            std::uint32_t leaf_value_size) {
  auto at = [&](const std::string& what) {
    return what + " in btree node (block " + std::to_string(where) + ")";
  };
  if (!n.is_internal() && !n.is_leaf())
    return at("bad node type " + std::to_string(n.flags()));
  std::uint32_t vs = n.value_size();
  std::uint32_t expected = n.is_internal() ? 8 : leaf_value_size;
  if (vs != expected)
    return at("value size mismatch: expected " + std::to_string(expected) + ", got " +
              std::to_string(vs));
  std::uint64_t max = n.max_entries();
  if (max == 0 || max % 3 != 0 || kNodeHeaderSize + (8 + vs) * max > kBlockSize)
    return at("bad max_entries " + std::to_string(max));
  std::uint32_t nr = n.nr_entries();
  if (nr > max)
    return at("nr_entries " + std::to_string(nr) + " > max_entries " + std::to_string(max));
  // Keys strictly ascending: one flag for the whole node (no branch a key), four keys a step.
  const std::uint8_t* keys = n.raw() + kNodeHeaderSize;
  bool bad = false;
  std::uint32_t i = 1;
  for (; i + 4 <= nr; i += 4) {
    std::uint64_t k0 = load_le64(keys + 8ull * (i - 1)), k1 = load_le64(keys + 8ull * i),
                  k2 = load_le64(keys + 8ull * (i + 1)), k3 = load_le64(keys + 8ull * (i + 2)),
                  k4 = load_le64(keys + 8ull * (i + 3));
    bad |= (k1 <= k0) | (k2 <= k1) | (k3 <= k2) | (k4 <= k3);
  }
  for (; i < nr; ++i) bad |= load_le64(keys + 8ull * i) <= load_le64(keys + 8ull * (i - 1));
  if (bad) return at("keys out of order");
  return std::nullopt;
}

}  // namespace thinmeta::pdata
