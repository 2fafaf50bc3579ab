// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree_walker.h"

#include <cstring>
#include <deque>
#include <vector>

#include "persistent-data/checksum.h"

namespace thinmeta::pdata {
namespace {

std::string range_str(BlockAddr addr) { return " (block " + std::to_string(addr) + ")"; }

class Walker {
 public:
  Walker(IoEngine& io, const WalkOptions& opts, BtreeVisitor& v) : io_(io), opts_(opts), v_(v) {}

  Flow walk(BlockAddr root) {
    NodeContext ctx{root, 0, KeyRange{}};
    if (!v_.enter(ctx)) return Flow::kContinue;
    if (root >= io_.nr_blocks())
      return v_.damage({root, ctx.range, "btree root beyond the end of the metadata device" +
                                             range_str(root)});
    AlignedBuffer buf(1);
    int err = 0;
    io_.read_many(std::span<const BlockAddr>(&root, 1), buf.data(), std::span<int>(&err, 1));
    if (err)
      return v_.damage({root, ctx.range, std::string("read error: ") + std::strerror(err) +
                                             range_str(root)});
    return visit(ctx, buf.data());
  }

 private:
  Flow visit(const NodeContext& ctx, const std::uint8_t* block) {
    if (auto bad = validate_block(block, ctx.addr, BlockKind::kNode))
      return v_.damage({ctx.addr, ctx.range, *bad});
    NodeView n(block);
    if (auto bad = check_node_shape(n, ctx.addr, opts_.leaf_value_size))
      return v_.damage({ctx.addr, ctx.range, *bad});
    std::uint32_t nr = n.nr_entries();
    if (nr > 0) {
      if (n.key(0) < ctx.range.begin || (ctx.range.end && n.key(nr - 1) >= *ctx.range.end))
        return v_.damage({ctx.addr, ctx.range,
                          "keys outside the range given by the parent" + range_str(ctx.addr)});
    }
    if (opts_.check_fill && ctx.depth > 0 && nr < n.max_entries() / 3)
      return v_.damage({ctx.addr, ctx.range,
                        "too few entries (" + std::to_string(nr) + ") in non-root btree node" +
                            range_str(ctx.addr)});
    if (n.is_leaf()) return v_.leaf(ctx, n);

    if (nr == 0 && ctx.depth > 0)
      return v_.damage({ctx.addr, ctx.range, "empty internal node" + range_str(ctx.addr)});
    if (ctx.depth + 1 >= opts_.max_depth)
      return v_.damage({ctx.addr, ctx.range, "btree too deep" + range_str(ctx.addr)});
    if (v_.internal(ctx, n) == Flow::kStop) return Flow::kStop;

    path_.push_back(ctx.addr);
    Flow f = visit_children(ctx, n);
    path_.pop_back();
    return f;
  }

  Flow visit_children(const NodeContext& ctx, const NodeView& n) {
    std::uint32_t nr = n.nr_entries();
    // Collect the children to read; report the ones that cannot be.
    std::vector<NodeContext> kids;
    std::vector<BlockAddr> addrs;
    kids.reserve(nr);
    addrs.reserve(nr);
    for (std::uint32_t i = 0; i < nr; ++i) {
      KeyRange r{n.key(i), i + 1 < nr ? std::optional<std::uint64_t>(n.key(i + 1)) : ctx.range.end};
      NodeContext kid{n.value64(i), ctx.depth + 1, r};
      if (kid.addr >= io_.nr_blocks()) {
        if (v_.damage({kid.addr, r,
                       "child pointer beyond the end of the metadata device" +
                           range_str(kid.addr)}) == Flow::kStop)
          return Flow::kStop;
        continue;
      }
      if (on_path(kid.addr)) {
        if (v_.damage({kid.addr, r, "cycle in btree" + range_str(kid.addr)}) == Flow::kStop)
          return Flow::kStop;
        continue;
      }
      if (!v_.enter(kid)) continue;
      kids.push_back(kid);
      addrs.push_back(kid.addr);
    }
    if (kids.empty()) return Flow::kContinue;

    // One buffer set per depth, reused: memory is bounded by the height, not the tree size.
    if (bufs_.size() <= ctx.depth) bufs_.resize(ctx.depth + 1);
    AlignedBuffer& bufs = bufs_[ctx.depth];
    bufs.resize(kids.size());
    std::vector<int> errs(kids.size());
    io_.read_many(addrs, bufs.data(), errs);
    for (std::size_t i = 0; i < kids.size(); ++i) {
      Flow f = errs[i] ? v_.damage({kids[i].addr, kids[i].range,
                                    std::string("read error: ") + std::strerror(errs[i]) +
                                        range_str(kids[i].addr)})
                       : visit(kids[i], bufs.block(i));
      if (f == Flow::kStop) return Flow::kStop;
    }
    return Flow::kContinue;
  }

  bool on_path(BlockAddr a) const {
    for (BlockAddr p : path_)
      if (p == a) return true;
    return false;
  }

  IoEngine& io_;
  const WalkOptions& opts_;
  BtreeVisitor& v_;
  std::vector<BlockAddr> path_;
  std::deque<AlignedBuffer> bufs_;  // deque: growing keeps references valid
};

}  // namespace

Flow walk_btree(IoEngine& io, BlockAddr root, const WalkOptions& opts, BtreeVisitor& v) {
  Walker w(io, opts, v);
  return w.walk(root);
}

std::optional<std::string> read_node(IoEngine& io, BlockAddr addr, std::uint32_t leaf_value_size,
                                     std::uint8_t* buf) {
  if (addr >= io.nr_blocks())
    return "btree node beyond the end of the metadata device" + range_str(addr);
  if (auto r = io.read(addr, buf); !r) return r.error().what;
  if (auto bad = validate_block(buf, addr, BlockKind::kNode)) return bad;
  return check_node_shape(NodeView(buf), addr, leaf_value_size);
}

}  // namespace thinmeta::pdata
