// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/pool_usage.h"

#include <algorithm>
#include <future>
#include <limits>
#include <unordered_map>
#include <vector>

#include "persistent-data/btree_walker.h"
#include "persistent-data/checksum.h"
#include "persistent-data/ref_counts.h"
#include "thin/device_details.h"
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

using pdata::AlignedBuffer;
using pdata::NodeView;

namespace {

constexpr std::uint64_t kMany = std::numeric_limits<std::uint64_t>::max();  // owner: several

Error damage(const std::string& what) {
  return Error{Errc::kDamage, "metadata contains errors (run thin_check for details): " + what};
}

std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) {
  return a > kMany - b ? kMany : a + b;
}

// A node reached by `weight` device paths; `owner` is the device when all come from one.
struct Reach {
  std::uint64_t weight = 0;
  std::uint64_t owner = 0;
  void add(std::uint64_t w, std::uint64_t dev) {
    owner = weight == 0 ? dev : (owner == dev ? dev : kMany);
    weight = sat_add(weight, w);
  }
};

struct Internal {
  Reach reach;
  std::uint32_t indegree = 0;  // edges from other internal nodes
  std::uint32_t first_child = 0, nr_children = 0;  // into Graph::children
  bool bottom = false;  // its children are leaves
};

struct LeafRef {
  BlockAddr addr;
  Reach reach;
};

class Graph {
 public:
  explicit Graph(pdata::IoEngine& io) : io_(io), buf_(1) {}

  // Adds a device root; reads the internal nodes below it once each.
  Result<> add_root(std::uint64_t dev, BlockAddr root) {
    THINMETA_CHECK(read(root, 0));
    NodeView n(buf_.data());
    if (n.is_leaf()) {
      leaves_.push_back({root, Reach{}});
      leaves_.back().reach.add(1, dev);
      return {};
    }
    roots_.emplace_back(dev, root);
    return discover(root);
  }

  // Propagates path counts top-down (Kahn's order) and returns every distinct leaf with its
  // total reach, sorted by block.
  Result<std::vector<LeafRef>> leaves() {
    for (auto& [dev, root] : roots_) nodes_.at(root).reach.add(1, dev);
    std::vector<BlockAddr> ready;
    for (auto& [addr, n] : nodes_)
      if (n.indegree == 0) ready.push_back(addr);
    std::size_t done = 0;
    while (!ready.empty()) {
      BlockAddr a = ready.back();
      ready.pop_back();
      ++done;
      Internal& n = nodes_.at(a);
      for (std::uint32_t i = 0; i < n.nr_children; ++i) {
        BlockAddr c = children_[n.first_child + i];
        if (n.bottom) {
          leaves_.push_back({c, n.reach});
          continue;
        }
        Internal& k = nodes_.at(c);
        if (n.reach.weight) k.reach.add(n.reach.weight, n.reach.owner);
        if (--k.indegree == 0) ready.push_back(c);
      }
    }
    if (done != nodes_.size()) return std::unexpected(damage("cycle in the mapping trees"));
    std::sort(leaves_.begin(), leaves_.end(),
              [](const LeafRef& a, const LeafRef& b) { return a.addr < b.addr; });
    std::vector<LeafRef> out;
    for (const LeafRef& l : leaves_) {
      if (!out.empty() && out.back().addr == l.addr)
        out.back().reach.add(l.reach.weight, l.reach.owner);
      else
        out.push_back(l);
    }
    leaves_.clear();
    leaves_.shrink_to_fit();
    return out;
  }

 private:
  Result<> read(BlockAddr b, unsigned depth) {
    if (auto bad = pdata::read_node(io_, b, kMappingValueSize, buf_.data())) return std::unexpected(damage(*bad));
    NodeView n(buf_.data());
    if (depth > 0 && n.nr_entries() < n.max_entries() / 3)
      return std::unexpected(damage("too few entries in non-root btree node (block " + std::to_string(b) + ")"));
    return {};
  }

  // Reads the internal node at `addr` (not seen before) and, depth first, its internal
  // descendants. Whether the children are leaves is learnt from the first one: in a btree
  // all leaves are at one depth (the leaf pass checks it).
  Result<> discover(BlockAddr addr) {
    if (nodes_.count(addr)) return {};
    std::vector<std::pair<BlockAddr, unsigned>> stack{{addr, 0}};
    nodes_[addr];
    while (!stack.empty()) {
      auto [a, depth] = stack.back();
      stack.pop_back();
      if (depth > 16) return std::unexpected(damage("btree too deep"));
      THINMETA_CHECK(read(a, depth));
      NodeView n(buf_.data());
      if (!n.is_internal())
        return std::unexpected(damage("btree leaves at different depths (block " + std::to_string(a) + ")"));
      Internal& node = nodes_[a];
      if (n.nr_entries() == 0) continue;  // an empty root
      node.first_child = static_cast<std::uint32_t>(children_.size());
      node.nr_children = n.nr_entries();
      for (std::uint32_t i = 0; i < n.nr_entries(); ++i) children_.push_back(n.value64(i));
      BlockAddr first = children_[node.first_child];
      THINMETA_CHECK(read(first, depth + 1));
      node.bottom = NodeView(buf_.data()).is_leaf();
      if (node.bottom) continue;
      for (std::uint32_t i = 0; i < node.nr_children; ++i) {
        BlockAddr c = children_[node.first_child + i];
        auto [it, fresh] = nodes_.try_emplace(c);
        ++it->second.indegree;
        if (fresh) stack.emplace_back(c, depth + 1);
      }
    }
    return {};
  }

  pdata::IoEngine& io_;
  AlignedBuffer buf_;
  std::unordered_map<BlockAddr, Internal> nodes_;
  std::vector<BlockAddr> children_;
  std::vector<std::pair<std::uint64_t, BlockAddr>> roots_;
  std::vector<LeafRef> leaves_;
};

// Reads `leaves` in address order, in batches, calling fn(leaf) on each valid one. The next
// batch is read on a helper thread while this one is decoded.
template <typename Fn>
Result<> for_each_leaf(pdata::IoEngine& io, const std::vector<LeafRef>& leaves, Fn fn) {
  constexpr std::size_t kBatch = 512;
  struct Slot {
    AlignedBuffer bufs{kBatch};
    std::vector<BlockAddr> addrs;
    std::vector<int> errs = std::vector<int>(kBatch);
    std::future<void> done;
  } slots[2];
  auto start = [&](Slot& s, std::size_t i, bool async) {
    std::size_t n = std::min(kBatch, leaves.size() - i);
    s.addrs.clear();
    for (std::size_t k = 0; k < n; ++k) s.addrs.push_back(leaves[i + k].addr);
    auto read = [&io, &s, n] { io.read_many(s.addrs, s.bufs.data(), std::span<int>(s.errs.data(), n)); };
    if (async)
      s.done = std::async(std::launch::async, read);
    else
      read();
  };
  if (leaves.empty()) return {};
  start(slots[0], 0, false);
  for (std::size_t i = 0, cur = 0; i < leaves.size(); i += kBatch, cur ^= 1) {
    Slot& s = slots[cur];
    if (s.done.valid()) s.done.get();
    if (i + kBatch < leaves.size()) start(slots[cur ^ 1], i + kBatch, true);
    std::size_t n = s.addrs.size();
    for (std::size_t k = 0; k < n; ++k) {
      BlockAddr a = s.addrs[k];
      const std::uint8_t* b = s.bufs.block(k);
      if (s.errs[k] || a >= io.nr_blocks())
        return std::unexpected(damage("read error (block " + std::to_string(a) + ")"));
      if (auto bad = pdata::validate_block(b, a, pdata::BlockKind::kNode))
        return std::unexpected(damage(*bad));
      NodeView node(b);
      if (auto bad = pdata::check_node_shape(node, a, kMappingValueSize))
        return std::unexpected(damage(*bad));
      if (!node.is_leaf())
        return std::unexpected(damage("btree leaves at different depths (block " + std::to_string(a) + ")"));
      fn(leaves[i + k], node);
    }
  }
  return {};
}

// Calls fn(data_begin, len) for each run of consecutive data blocks in a leaf.
template <typename Fn>
void data_runs(const NodeView& n, Fn fn) {
  std::uint32_t nr = n.nr_entries();
  std::uint32_t i = 0;
  while (i < nr) {
    std::uint64_t d = unpack_block_time(n.value64(i)).data_block;
    std::uint32_t j = i + 1;
    while (j < nr && unpack_block_time(n.value64(j)).data_block == d + (j - i)) ++j;
    fn(d, j - i);
    i = j;
  }
}

Result<std::optional<std::uint64_t>> highest_key(pdata::IoEngine& io, BlockAddr root) {
  AlignedBuffer buf(1);
  BlockAddr b = root;
  for (unsigned depth = 0; depth < 16; ++depth) {
    if (auto bad = pdata::read_node(io, b, kMappingValueSize, buf.data()))
      return std::unexpected(damage(*bad));
    NodeView n(buf.data());
    if (n.nr_entries() == 0) return std::optional<std::uint64_t>();
    if (n.is_leaf()) return std::optional<std::uint64_t>(n.key(n.nr_entries() - 1));
    b = n.value64(n.nr_entries() - 1);
  }
  return std::unexpected(damage("btree too deep"));
}

}  // namespace

Result<std::map<std::uint64_t, DeviceUsage>> pool_usage(pdata::IoEngine& io,
                                                        BlockAddr mapping_root,
                                                        const UsageOptions& opts) {
  std::map<std::uint64_t, DeviceUsage> out;
  std::vector<std::pair<std::uint64_t, BlockAddr>> devs;
  std::optional<Error> err;
  walk_device_roots(
      io, mapping_root,
      [&](std::uint64_t id, BlockAddr root) {
        devs.emplace_back(id, root);
        out[id];
        return pdata::Flow::kContinue;
      },
      [&](const pdata::Damage& d) {
        err = damage(d.what);
        return pdata::Flow::kStop;
      });
  if (err) return std::unexpected(*err);

  if (opts.highest)
    for (auto& [id, root] : devs) {
      THINMETA_TRY(out[id].highest_block, highest_key(io, root));
    }
  if (!opts.exclusive) return out;

  Graph g(io);
  for (auto& [id, root] : devs) THINMETA_CHECK(g.add_root(id, root));
  THINMETA_TRY(std::vector<LeafRef> leaves, g.leaves());

  // Pass 1: how many times each data block is mapped (0, 1, or 2 meaning "more").
  pdata::RefCounts counts;
  THINMETA_CHECK(for_each_leaf(io, leaves, [&](const LeafRef& l, const NodeView& n) {
    std::uint32_t w = static_cast<std::uint32_t>(std::min<std::uint64_t>(l.reach.weight, 2));
    data_runs(n, [&](std::uint64_t d, std::uint64_t len) { counts.add_capped(d, len, w, 2); });
  }));
  // Pass 2: a leaf reached once belongs to one device; count its blocks mapped once.
  std::erase_if(leaves, [](const LeafRef& l) { return l.reach.weight != 1; });
  THINMETA_CHECK(for_each_leaf(io, leaves, [&](const LeafRef& l, const NodeView& n) {
    std::uint64_t found = 0;
    data_runs(n, [&](std::uint64_t d, std::uint64_t len) { found += counts.count_equal(d, len, 1); });
    out[l.reach.owner].exclusive_blocks += found;
  }));
  return out;
}

std::string human_size(std::uint64_t n) {
  static const char* const kUnits[] = {"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  unsigned i = 0;
  while (n > 1048576) {
    n /= 1024;
    ++i;
  }
  if (n > 8192) {
    n = (n + 512) / 1024;
    ++i;
  }
  return std::to_string(n) + kUnits[i];
}

}  // namespace thinmeta::thin
