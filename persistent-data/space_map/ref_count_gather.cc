// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/ref_count_gather.h"

#include <algorithm>

#include "persistent-data/endian.h"
#include "persistent-data/helper_thread.h"

namespace thinmeta::pdata {
namespace {

constexpr std::uint32_t kRefCountValueSize = 4;
constexpr std::size_t kLeafBatch = 256;
constexpr std::size_t kMinSlice = 32;  // leaves a worker reads at least

WalkOptions tree_options() {
  WalkOptions o;
  o.leaf_value_size = kRefCountValueSize;
  return o;
}

// Records the internal nodes and the leaves they name (not read), in key order.
class InternalVisitor final : public BtreeVisitor {
 public:
  InternalVisitor(unsigned leaf_depth, std::vector<BlockAddr>& nodes,
                  std::vector<std::pair<BlockAddr, KeyRange>>& leaves)
      : depth_(leaf_depth), nodes_(nodes), leaves_(leaves) {}
  bool enter(const NodeContext& c) override {
    nodes_.push_back(c.addr);
    if (c.depth < depth_) return true;
    leaves_.emplace_back(c.addr, c.range);
    return false;
  }
  Flow leaf(const NodeContext&, const NodeView&) override {  // a leaf above the leaf level
    ok = false;
    return Flow::kStop;
  }
  Flow damage(const Damage&) override {
    ok = false;
    return Flow::kStop;
  }
  bool ok = true;

 private:
  unsigned depth_;
  std::vector<BlockAddr>& nodes_;
  std::vector<std::pair<BlockAddr, KeyRange>>& leaves_;
};

}  // namespace

RefCountTreeGather::RefCountTreeGather(IoEngine& io, const SmRoot& root,
                                       BlockAddr nr_metadata_blocks)
    : io_(io), nr_blocks_(root.nr_blocks) {
  img_.counts = RefCounts(root.nr_blocks);
  BlockAddr nr_meta = std::min(nr_metadata_blocks, io.nr_blocks());
  // The leaf depth: down the leftmost path (every leaf of a valid tree is at that depth).
  WalkOptions o = tree_options();
  AlignedBuffer buf(1);
  BlockAddr at = root.ref_count_root;
  for (;;) {
    if (at >= nr_meta || leaf_depth_ + 1 >= o.max_depth) return;
    if (read_node(io, at, kRefCountValueSize, buf.data())) return;
    NodeView n(buf.data());
    if (n.is_leaf()) break;
    if (n.nr_entries() == 0) return;
    at = n.value64(0);
    ++leaf_depth_;
  }
  std::vector<std::pair<BlockAddr, KeyRange>> leaves;
  InternalVisitor v(leaf_depth_, img_.nodes, leaves);
  walk_btree(io, root.ref_count_root, o, v);
  if (!v.ok || leaves.size() > kMaxLeaves) return;
  is_leaf_.assign((nr_meta + 63) / 64, 0);
  leaves_.reserve(leaves.size());
  by_addr_.reserve(leaves.size());
  for (auto& [addr, range] : leaves) {
    if (addr >= nr_meta) return;
    is_leaf_[addr / 64] |= 1ull << (addr % 64);
    by_addr_.emplace_back(addr, leaves_.size());
    leaves_.push_back(Leaf{addr, range});
  }
  std::sort(by_addr_.begin(), by_addr_.end());
  state_.assign(leaves_.size(), kPendingLeaf);
  ok_ = true;
}

bool RefCountTreeGather::wants(BlockAddr b) const {
  return b / 64 < is_leaf_.size() && (is_leaf_[b / 64] >> (b % 64) & 1);
}

std::size_t RefCountTreeGather::find(BlockAddr b) const {
  auto it = std::lower_bound(by_addr_.begin(), by_addr_.end(), std::make_pair(b, std::size_t{0}));
  return it != by_addr_.end() && it->first == b ? it->second : npos;
}

void RefCountTreeGather::take(BlockAddr b, const std::uint8_t* block) {
  std::size_t i = find(b);
  if (i == npos) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (state_[i] != kPendingLeaf) return;  // a block the node appears twice as (bad) or read twice
  apply(i, block);
  ++taken_;
}

bool RefCountTreeGather::node_ok(std::size_t i, const std::uint8_t* block) const {
  const Leaf& l = leaves_[i];
  NodeContext ctx{l.addr, leaf_depth_, l.range};
  return !check_node(ctx, block, tree_options()) && NodeView(block).is_leaf();
}

void RefCountTreeGather::apply(std::size_t i, const std::uint8_t* block) {
  if (!node_ok(i, block)) {
    state_[i] = kBad;
    return;
  }
  apply_checked(i, block);
}

void RefCountTreeGather::apply_checked(std::size_t i, const std::uint8_t* block) {
  NodeView n(block);
  std::uint32_t nr = n.nr_entries();  // <= max_entries_for(4): checked above
  // A leaf inside one page of the image held as bytes (the keys ascend: checked, so the last
  // one bounds them all), counts 3..254 (the largest c - 3 found on the way, c < 3 wrapping
  // to a large one): stored straight from the block. Anything else (damage included) goes
  // the general way below, which stores the same keys again.
  if (nr >= 64 && n.key(0) >> RefCounts::kPageShift == n.key(nr - 1) >> RefCounts::kPageShift &&
      n.key(nr - 1) < nr_blocks_) {
    if (std::uint8_t* v = img_.counts.count_bytes(n.key(0), /*create=*/true)) {
      const std::uint8_t* keys = block + kNodeHeaderSize;
      const std::uint8_t* values = n.value(0);
      std::uint32_t worst = 0;
      for (std::uint32_t k = 0; k < nr; ++k) {
        std::uint32_t c = load_le32(values + 4ull * k);
        worst = std::max(worst, c - 3);
        v[load_le64(keys + 8ull * k) & (RefCounts::kPageBlocks - 1)] = static_cast<std::uint8_t>(c);
      }
      if (worst <= 251) {
        state_[i] = kDone;
        return;
      }
    }
  }
  std::uint64_t keys[max_entries_for(kRefCountValueSize)];
  std::uint32_t counts[max_entries_for(kRefCountValueSize)];
  const std::uint8_t* values = n.value(0);
  bool bad = false;
  for (std::uint32_t k = 0; k < nr; ++k) {
    keys[k] = n.key(k);
    counts[k] = load_le32(values + 4ull * k);
    bad |= (keys[k] >= nr_blocks_) | (counts[k] < 3);
  }
  if (bad) {
    state_[i] = kBad;
    return;
  }
  img_.counts.set_sorted(std::span<const std::uint64_t>(keys, nr),
                         std::span<const std::uint32_t>(counts, nr));
  state_[i] = kDone;
}

std::size_t RefCountTreeGather::nr_taken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return taken_;
}

RefCountTreeImage RefCountTreeGather::finish() {
  RefCountTreeImage out;
  if (!ok_) return out;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BlockAddr> rest;
  for (const auto& [addr, i] : by_addr_)
    if (state_[i] == kPendingLeaf) rest.push_back(addr);
  rest.erase(std::unique(rest.begin(), rest.end()), rest.end());
  AlignedBuffer bufs;  // read into only: not zeroed
  bufs.resize_for_reads(std::min(kLeafBatch, std::max<std::size_t>(rest.size(), 1)));
  std::vector<int> errs(kLeafBatch);
  std::vector<std::uint8_t> ok(kLeafBatch);
  for (std::size_t at = 0; at < rest.size(); at += kLeafBatch) {
    std::size_t n = std::min(kLeafBatch, rest.size() - at);
    // The reads (where the engine reads in parallel: the page-cache copies spread over the
    // cores) and the node checks (a CRC each) on the workers, in slices; the counts are set
    // here, in key order.
    std::size_t slices = std::min<std::size_t>(worker_count(), n / kMinSlice);
    bool split = slices > 1 && io_.parallel_reads();
    if (!split)
      io_.read_many(std::span<const BlockAddr>(rest.data() + at, n), bufs.data(),
                    std::span<int>(errs.data(), n));
    slices = std::max<std::size_t>(slices, 1);
    run_parallel(slices, [&](std::size_t s) {
      std::size_t lo = n * s / slices, hi = n * (s + 1) / slices;
      if (split)
        io_.read_many(std::span<const BlockAddr>(rest.data() + at + lo, hi - lo),
                      bufs.block(lo), std::span<int>(errs.data() + lo, hi - lo));
      for (std::size_t k = lo; k < hi; ++k)
        ok[k] = !errs[k] && node_ok(find(rest[at + k]), bufs.block(k));
    });
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = find(rest[at + k]);
      if (errs[k])
        state_[i] = kBad;
      else if (state_[i] == kPendingLeaf)
        ok[k] ? apply_checked(i, bufs.block(k)) : void(state_[i] = kBad);
    }
  }
  for (std::uint8_t s : state_)
    if (s != kDone) return out;
  out.usable = true;
  out.nodes = std::move(img_.nodes);
  out.counts = std::move(img_.counts);
  return out;
}

}  // namespace thinmeta::pdata
