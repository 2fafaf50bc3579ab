// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/node_scan.h"

#include <algorithm>

#include "persistent-data/btree/btree_node.h"
#include "persistent-data/checksum.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

constexpr std::size_t kScanBatch = 1024;  // blocks per read_many (4 MiB)
constexpr int kMaxRounds = 20;            // taller than any valid btree

bool sane_node(const NodeView& n, BlockAddr where) {
  std::uint32_t vs = n.value_size();
  if (n.is_internal() && vs != 8) return false;
  if (vs != 4 && vs != 8 && vs != 16 && vs != 24) return false;
  return !check_node_shape(n, where, n.is_internal() ? 8 : vs);
}

// The blocks of the nodes of kind k for which keep(node) holds, ascending.
template <typename Keep>
std::vector<BlockAddr> blocks_of(const std::unordered_map<BlockAddr, ScannedNode>& nodes,
                                 TreeKind k, Keep keep) {
  std::vector<BlockAddr> out;
  for (const auto& [b, n] : nodes)
    if (n.kind == k && keep(n)) out.push_back(b);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

NodeScan NodeScan::run(IoEngine& io, BlockAddr nr_blocks) {
  NodeScan s;
  nr_blocks = std::min(nr_blocks, io.nr_blocks());
  AlignedBuffer buf(kScanBatch);
  std::vector<BlockAddr> addrs;
  std::vector<int> errs;
  for (BlockAddr first = 0; first < nr_blocks; first += kScanBatch) {
    std::size_t n = static_cast<std::size_t>(std::min<BlockAddr>(kScanBatch, nr_blocks - first));
    addrs.resize(n);
    errs.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) addrs[i] = first + i;
    io.read_many(addrs, buf.data(), errs);
    for (std::size_t i = 0; i < n; ++i) {
      if (errs[i]) continue;
      const std::uint8_t* b = buf.block(i);
      BlockAddr where = first + i;
      auto k = identify_block(b);
      if (!k || load_le64(b + 8) != where) continue;
      if (*k == BlockKind::kNode) {
        s.add_node(where, b, nr_blocks);
      } else if (*k == BlockKind::kSuperblock && where != 0) {
        if (auto sb = validate_superblock(b, where)) s.sb_copies_.push_back({where, *sb});
      } else if (*k == BlockKind::kIndex) {
        s.index_blocks_.push_back(where);
      }
    }
  }
  s.classify();
  return s;
}

void NodeScan::add_node(BlockAddr b, const std::uint8_t* block, BlockAddr nr_blocks) {
  NodeView n(block);
  if (!sane_node(n, b)) return;
  ScannedNode s;
  s.nr = n.nr_entries();
  s.value_size = n.value_size();
  s.internal = n.is_internal();
  if (s.nr) s.first_key = n.key(0), s.last_key = n.key(s.nr - 1);
  if (s.internal) {
    for (std::uint32_t i = 0; i < s.nr; ++i) s.ptrs.push_back(n.value64(i)), s.keys.push_back(n.key(i));
  } else if (s.value_size == 8 && s.nr > 0) {
    // Not necessarily distinct: devices share subtrees (snapshots, restored empty devices).
    bool pointers = true;
    for (std::uint32_t i = 0; i < s.nr && pointers; ++i) {
      BlockAddr v = n.value64(i);
      pointers = v != 0 && v < nr_blocks && v != b;
    }
    if (pointers)
      for (std::uint32_t i = 0; i < s.nr; ++i) s.ptrs.push_back(n.value64(i)), s.keys.push_back(n.key(i));
  }
  s.kind = s.internal                   ? TreeKind::kUnknown
           : s.value_size == kDetailsValueSize ? TreeKind::kDetails
           : s.value_size == 8                 ? TreeKind::kBottom
                                               : TreeKind::kOther;
  nodes_.emplace(b, std::move(s));
}

TreeKind NodeScan::internal_kind(const ScannedNode& n) const {
  TreeKind k = TreeKind::kUnknown;
  for (BlockAddr c : n.ptrs) {
    auto it = nodes_.find(c);
    if (it == nodes_.end()) continue;  // unreadable child: the rest still tell the kind
    TreeKind ck = it->second.kind;
    if (ck == TreeKind::kUnknown) continue;
    if (ck == TreeKind::kConflict) return TreeKind::kConflict;
    if (k != TreeKind::kUnknown && k != ck) return TreeKind::kConflict;
    k = ck;
  }
  return k;
}

void NodeScan::classify() {
  // Internal nodes take the kind of their children, level by level (a fixpoint: each round
  // settles one more level).
  auto settle_internal = [&] {
    for (auto& [b, n] : nodes_)
      if (n.internal) n.kind = TreeKind::kUnknown;
    for (int round = 0; round < kMaxRounds; ++round) {
      bool changed = false;
      for (auto& [b, n] : nodes_) {
        if (!n.internal) continue;
        TreeKind k = internal_kind(n);
        if (k != n.kind) {
          n.kind = k;
          changed = true;
        }
      }
      if (!changed) break;
    }
  };
  settle_internal();
  // Top-level leaves: value-size-8 leaves whose values are all roots of bottom-level trees.
  auto all_bottom = [&](const ScannedNode& n) {
    if (n.ptrs.empty()) return false;
    for (BlockAddr c : n.ptrs)
      if (kind(c) != TreeKind::kBottom) return false;
    return true;
  };
  std::vector<BlockAddr> tops;
  for (auto& [b, n] : nodes_)
    if (!n.internal && n.value_size == 8 && all_bottom(n)) tops.push_back(b);
  for (BlockAddr b : tops) nodes_[b].kind = TreeKind::kTop;
  settle_internal();
  // A leaf that points at another "top-level" leaf was a bottom leaf after all.
  for (BlockAddr b : tops)
    if (!all_bottom(nodes_[b])) nodes_[b].kind = TreeKind::kBottom;
  settle_internal();

  for (auto& [b, n] : nodes_) {
    if (!n.internal || n.kind == TreeKind::kUnknown || n.kind == TreeKind::kConflict) continue;
    for (BlockAddr c : n.ptrs) {
      auto it = nodes_.find(c);
      if (it != nodes_.end() && it->second.kind == n.kind) it->second.referenced = true;
    }
  }
}

const ScannedNode* NodeScan::node(BlockAddr b) const {
  auto it = nodes_.find(b);
  return it == nodes_.end() ? nullptr : &it->second;
}

TreeKind NodeScan::kind(BlockAddr b) const {
  auto it = nodes_.find(b);
  return it == nodes_.end() ? TreeKind::kUnknown : it->second.kind;
}

std::vector<BlockAddr> NodeScan::roots(TreeKind k) const {
  return blocks_of(nodes_, k, [](const ScannedNode& n) { return !n.referenced; });
}

std::vector<BlockAddr> NodeScan::leaves(TreeKind k) const {
  return blocks_of(nodes_, k, [](const ScannedNode& n) { return !n.internal; });
}

}  // namespace thinmeta::thin
