// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/pool_usage.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/checksum.h"
#include "persistent-data/decimal.h"
#include "persistent-data/endian.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/space_map/ref_counts.h"
#include "thin/data_runs.h"
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
using LeafList = std::vector<LeafRef>;

// Reads nodes in batches into two buffers it keeps (one being decoded, the next being read on
// a helper thread), allocated once for all the reads of a run: fresh memory costs page faults
// (~15 us a 4 KiB page on the bench VM, more than checksumming the block).
class NodeReader {
 public:
  explicit NodeReader(pdata::IoEngine& io) : io_(io) {}

  // Reads the blocks addr_of(0) .. addr_of(n - 1) in order, calling fn(index, node) on each
  // valid node that is a leaf when `leaves` (an internal node otherwise); damage stops the
  // reading.
  template <typename AddrOf, typename Fn>
  Result<> for_each(std::size_t n, AddrOf addr_of, bool leaves, bool check_fill, Fn fn) {
    if (!n) return {};
    const std::size_t stride = std::min(kBatch, n);
    // Contents not zeroed: only read into (zeroing was a tenth of thin_ls's CPU).
    bufs_.resize_for_reads(2 * stride);
    struct Drain {  // no read outlives the call, whichever way it returns
      Slot* s;
      ~Drain() {
        s[0].done = {};
        s[1].done = {};
      }
    } drain{slots_};
    auto start = [&](std::size_t slot, std::size_t i, bool async) {
      Slot& s = slots_[slot];
      s.nr = std::min(kBatch, n - i);
      for (std::size_t k = 0; k < s.nr; ++k) s.addrs[k] = addr_of(i + k);
      s.buf = bufs_.block(slot * stride);
      // Checksums are verified on the reading thread: the decoding thread has the rest to do.
      auto read = [this, &s] {
        io_.read_many(std::span<const BlockAddr>(s.addrs.data(), s.nr), s.buf,
                      std::span<int>(s.errs.data(), s.nr));
        for (std::size_t k = 0; k < s.nr; ++k)
          if (!s.errs[k])
            s.bad[k] = pdata::validate_block(s.buf + k * pdata::kBlockSize, s.addrs[k],
                                             pdata::BlockKind::kNode);
      };
      if (async)
        s.done = pdata::on_helper(read);
      else
        read();
    };
    start(0, 0, false);
    for (std::size_t i = 0, cur = 0; i < n; i += kBatch, cur ^= 1) {
      Slot& s = slots_[cur];
      if (s.done.valid()) s.done.get();
      if (i + kBatch < n) start(cur ^ 1, i + kBatch, true);
      for (std::size_t k = 0; k < s.nr; ++k) {
        BlockAddr a = s.addrs[k];
        const std::uint8_t* b = s.buf + k * pdata::kBlockSize;
        if (s.errs[k] || a >= io_.nr_blocks())
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

 private:
  static constexpr std::size_t kBatch = 256;  // both buffers: 2 MiB
  struct Slot {
    std::uint8_t* buf = nullptr;
    std::size_t nr = 0;
    std::vector<BlockAddr> addrs = std::vector<BlockAddr>(kBatch);
    std::vector<int> errs = std::vector<int>(kBatch);
    std::vector<std::optional<std::string>> bad = std::vector<std::optional<std::string>>(kBatch);
    pdata::Pending<void> done;
  };
  pdata::IoEngine& io_;
  AlignedBuffer bufs_;
  Slot slots_[2];
};

// Sorts leaves by address: least significant digit first, 11 bits a pass over the bits the
// highest address has (two passes up to 4M metadata blocks; std::sort took ~14M instructions
// on the 8m image's 74K leaves). Equal addresses may come in any order: they are joined.
void sort_by_addr(LeafList& v) {
  constexpr unsigned kBits = 11;
  constexpr std::size_t kMask = (std::size_t{1} << kBits) - 1;
  BlockAddr top = 0;
  for (const LeafRef& l : v) top |= l.addr;
  if (v.size() < 2 || !top) return;
  LeafList tmp(v.size());
  std::vector<std::size_t> at(kMask + 1);
  for (unsigned shift = 0; shift < 64 && (top >> shift); shift += kBits) {
    std::fill(at.begin(), at.end(), 0);
    for (const LeafRef& l : v) ++at[(l.addr >> shift) & kMask];
    std::size_t sum = 0;
    for (std::size_t& c : at) sum += std::exchange(c, sum);
    for (const LeafRef& l : v) tmp[at[(l.addr >> shift) & kMask]++] = l;
    v.swap(tmp);
  }
}

class Graph {
 public:
  Graph(pdata::IoEngine& io, NodeReader& reader) : io_(io), reader_(reader), buf_(1) {}

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
      THINMETA_CHECK(reader_.for_each(level.size(), [&](std::size_t i) { return level[i]; }, false, !is_root, [&](std::size_t i, const NodeView& k) {
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
  Result<LeafList> leaves() {
    for (auto& [dev, root] : roots_) nodes_.at(root).reach.add(1, dev);
    std::size_t nr_leaves = leaves_.size();
    for (auto& [addr, n] : nodes_)
      if (n.height == 1) nr_leaves += n.nr_children;
    leaves_.reserve(nr_leaves);  // grown by doubling, its copies were ~3% of thin_ls
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
    sort_by_addr(leaves_);
    // Leaves reached through several parents joined in place (a copy was a tenth of the
    // page faults of thin_ls on the 8m image).
    std::size_t kept = 0;
    for (const LeafRef& l : leaves_) {
      if (kept && leaves_[kept - 1].addr == l.addr)
        leaves_[kept - 1].reach.add(l.reach.weight, l.reach.owner);
      else
        leaves_[kept++] = l;
    }
    leaves_.resize(kept);
    return std::move(leaves_);
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
  NodeReader& reader_;
  AlignedBuffer buf_;
  std::unordered_map<BlockAddr, Internal> nodes_;
  std::vector<BlockAddr> children_;  // ~8 bytes a leaf
  std::vector<std::pair<std::uint64_t, BlockAddr>> roots_;
  LeafList leaves_;
};

// Calls fn(data_begin, len) for each run of consecutive data blocks in a leaf (the values
// read straight from the leaf's array).
template <typename Fn>
void data_runs(const NodeView& n, Fn fn) {
  const std::uint8_t* v = n.value(0);
  for_each_data_run(v, n.nr_entries(), [v, &fn](std::uint32_t first, std::uint32_t len) {
    fn(pdata::load_le64(v + 8ull * first) >> 24, std::uint64_t{len});
  });
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
  NodeReader reader(io);
  Graph g(io, reader);
  for (std::size_t i = 0; i < devs.size(); ++i) THINMETA_CHECK(g.add_root(i, devs[i].second));
  THINMETA_TRY(LeafList leaves, g.leaves());

  // One pass over the distinct leaves. Each data block is unseen (0), mapped once so far by a
  // leaf of device k that no other path reaches (k + 2), or mapped more than once (1);
  // excl[k] counts the blocks in state k + 2.
  pdata::RefCounts state;
  if (devs.size() > 1) state.prefer_byte_pages();  // states k + 2 >= 3: 2 bits cannot hold them
  std::vector<std::uint64_t> excl(devs.size());
  THINMETA_CHECK(reader.for_each(leaves.size(), [&](std::size_t i) { return leaves[i].addr; }, true, false, [&](std::size_t i, const NodeView& n) {
    const Reach& r = leaves[i].reach;
    std::uint64_t* ex = excl.data();  // locals: the byte stores of update_range alias anything
    if (r.weight == 1) {
      const auto own = static_cast<std::uint32_t>(r.owner + 2);
      data_runs(n, [&state, ex, own](std::uint64_t d, std::uint64_t len) {
        state.update_range(d, len, [ex, own](std::uint32_t c, std::uint64_t k) -> std::uint32_t {
          if (c == 0) {
            ex[own - 2] += k;
            return own;
          }
          if (c >= 2) ex[c - 2] -= k;
          return 1;
        });
      });
    } else {
      data_runs(n, [&state, ex](std::uint64_t d, std::uint64_t len) {
        state.update_range(d, len, [ex](std::uint32_t c, std::uint64_t k) -> std::uint32_t {
          if (c >= 2) ex[c - 2] -= k;
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
  return pdata::decimal_string(n) + kUnits[i];
}

}  // namespace thinmeta::thin
