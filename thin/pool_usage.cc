// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/pool_usage.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/checksum.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/space_map/ref_counts.h"
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

// A node reached by `weight` device paths; `owner` is the device (its index) when all come
// from one.
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
  unsigned height = 0;  // levels below it: 1 when its children are leaves
};

struct LeafRef {
  BlockAddr addr;
  Reach reach;
};

// Reads `addrs` in order, in batches, calling fn(index, node) on each valid node that is a
// leaf when `leaves` (an internal node otherwise); damage stops the reading. The next batch
// is read on a helper thread while this one is decoded.
template <typename Fn>
Result<> for_each_node(pdata::IoEngine& io, std::span<const BlockAddr> addrs, bool leaves,
                       bool check_fill, Fn fn) {
  constexpr std::size_t kBatch = 512;
  struct Slot {
    AlignedBuffer bufs;
    std::span<const BlockAddr> addrs;
    std::vector<int> errs = std::vector<int>(kBatch);
    std::vector<std::optional<std::string>> bad = std::vector<std::optional<std::string>>(kBatch);
    pdata::Pending<void> done;
  } slots[2];
  auto start = [&](Slot& s, std::size_t i, bool async) {
    s.addrs = addrs.subspan(i, std::min(kBatch, addrs.size() - i));
    // Checksums are verified on the reading thread: the decoding thread has the rest to do.
    auto read = [&io, &s] {
      io.read_many(s.addrs, s.bufs.data(), std::span<int>(s.errs.data(), s.addrs.size()));
      for (std::size_t k = 0; k < s.addrs.size(); ++k)
        if (!s.errs[k])
          s.bad[k] = pdata::validate_block(s.bufs.block(k), s.addrs[k], pdata::BlockKind::kNode);
    };
    if (async)
      s.done = pdata::on_helper(read);
    else
      read();
  };
  if (addrs.empty()) return {};
  for (Slot& s : slots) s.bufs.resize(std::min(kBatch, addrs.size()));
  start(slots[0], 0, false);
  for (std::size_t i = 0, cur = 0; i < addrs.size(); i += kBatch, cur ^= 1) {
    Slot& s = slots[cur];
    if (s.done.valid()) s.done.get();
    if (i + kBatch < addrs.size()) start(slots[cur ^ 1], i + kBatch, true);
    for (std::size_t k = 0; k < s.addrs.size(); ++k) {
      BlockAddr a = s.addrs[k];
      const std::uint8_t* b = s.bufs.block(k);
      if (s.errs[k] || a >= io.nr_blocks())
        return std::unexpected(damage("read error (block " + std::to_string(a) + ")"));
      if (s.bad[k]) return std::unexpected(damage(*s.bad[k]));
      NodeView node(b);
      if (auto bad = pdata::check_node_shape(node, a, kMappingValueSize))
        return std::unexpected(damage(*bad));
      if (node.is_leaf() != leaves)
        return std::unexpected(damage("btree leaves at different depths (block " + std::to_string(a) + ")"));
      if (check_fill && node.nr_entries() < node.max_entries() / 3)
        return std::unexpected(damage("too few entries in non-root btree node (block " + std::to_string(a) + ")"));
      fn(i + k, node);
    }
  }
  return {};
}

class Graph {
 public:
  explicit Graph(pdata::IoEngine& io) : io_(io), buf_(1) {}

  // Adds a device root (dev: the device's index); reads the internal nodes below it once
  // each, a level at a time. A node's height (levels below it) is the same through every
  // path: it is learnt once per root by following first children down to a leaf.
  Result<> add_root(std::uint64_t dev, BlockAddr root) {
    THINMETA_CHECK(read(root, false));
    NodeView n(buf_.data());
    if (n.is_leaf()) {
      leaves_.push_back({root, Reach{}});
      leaves_.back().reach.add(1, dev);
      return {};
    }
    roots_.emplace_back(dev, root);
    if (nodes_.count(root)) return {};
    if (n.nr_entries() == 0) {  // an empty root
      nodes_[root];
      return {};
    }
    unsigned height = 1;
    for (BlockAddr c = n.value64(0);; ++height) {
      if (height > 16) return std::unexpected(damage("btree too deep"));
      THINMETA_CHECK(read(c, true));
      NodeView k(buf_.data());
      if (k.is_leaf()) break;
      c = k.value64(0);
    }
    nodes_[root].height = height;
    std::vector<BlockAddr> level{root};
    bool is_root = true;
    while (!level.empty()) {
      std::vector<BlockAddr> next;
      std::optional<Error> bad;
      THINMETA_CHECK(for_each_node(io_, level, false, !is_root, [&](std::size_t i, const NodeView& k) {
        Internal& node = nodes_.at(level[i]);
        node.first_child = static_cast<std::uint32_t>(children_.size());
        node.nr_children = k.nr_entries();
        for (std::uint32_t j = 0; j < k.nr_entries(); ++j) children_.push_back(k.value64(j));
        if (node.height == 1) return;
        unsigned h = node.height - 1;
        for (std::uint32_t j = 0; j < k.nr_entries(); ++j) {
          auto [it, fresh] = nodes_.try_emplace(k.value64(j));
          ++it->second.indegree;
          if (fresh) {
            it->second.height = h;
            next.push_back(k.value64(j));
          } else if (it->second.height != h && !bad) {
            bad = damage("btree leaves at different depths (block " + std::to_string(k.value64(j)) + ")");
          }
        }
      }));
      if (bad) return std::unexpected(*bad);
      level = std::move(next);
      is_root = false;
    }
    return {};
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
        if (n.height == 1) {
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
  Result<> read(BlockAddr b, bool check_fill) {
    if (auto bad = pdata::read_node(io_, b, kMappingValueSize, buf_.data())) return std::unexpected(damage(*bad));
    NodeView n(buf_.data());
    if (check_fill && n.nr_entries() < n.max_entries() / 3)
      return std::unexpected(damage("too few entries in non-root btree node (block " + std::to_string(b) + ")"));
    return {};
  }

  pdata::IoEngine& io_;
  AlignedBuffer buf_;
  std::unordered_map<BlockAddr, Internal> nodes_;
  std::vector<BlockAddr> children_;
  std::vector<std::pair<std::uint64_t, BlockAddr>> roots_;
  std::vector<LeafRef> leaves_;
};

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

  // Devices by index (the owner a Reach records).
  Graph g(io);
  for (std::size_t i = 0; i < devs.size(); ++i) THINMETA_CHECK(g.add_root(i, devs[i].second));
  THINMETA_TRY(std::vector<LeafRef> leaves, g.leaves());

  // One pass over the distinct leaves. Each data block is unseen (0), mapped once so far by a
  // leaf of device k that no other path reaches (k + 2), or mapped more than once (1);
  // excl[k] counts the blocks in state k + 2.
  pdata::RefCounts state;
  std::vector<std::uint64_t> excl(devs.size());
  std::vector<BlockAddr> addrs;
  addrs.reserve(leaves.size());
  for (const LeafRef& l : leaves) addrs.push_back(l.addr);
  THINMETA_CHECK(for_each_node(io, addrs, true, false, [&](std::size_t i, const NodeView& n) {
    const Reach& r = leaves[i].reach;
    if (r.weight == 1) {
      auto own = static_cast<std::uint32_t>(r.owner + 2);
      data_runs(n, [&](std::uint64_t d, std::uint64_t len) {
        state.update_range(d, len, [&](std::uint32_t c) -> std::uint32_t {
          if (c == 0) {
            ++excl[own - 2];
            return own;
          }
          if (c >= 2) --excl[c - 2];
          return 1;
        });
      });
    } else {
      data_runs(n, [&](std::uint64_t d, std::uint64_t len) {
        state.update_range(d, len, [&](std::uint32_t c) -> std::uint32_t {
          if (c >= 2) --excl[c - 2];
          return 1;
        });
      });
    }
  }));
  for (std::size_t i = 0; i < devs.size(); ++i) out[devs[i].first].exclusive_blocks = excl[i];
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
