// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree/btree_walker.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "persistent-data/checksum.h"
#include "persistent-data/helper_thread.h"

namespace thinmeta::pdata {
namespace {

std::string range_str(BlockAddr addr) { return " (block " + std::to_string(addr) + ")"; }

// Batch buffers outlive a walk: tools walk one tree per device, and fresh buffers (up to 1 MiB
// each, page-faulted in as they are read into) cost a quarter of a warm check's CPU. A walk
// takes the buffers a previous one gave back (a few MiB in all, kept for the process).
// A depth's buffers: two batches used in turn, then each one's prepared-leaf area.
using DepthBuffers = std::array<AlignedBuffer, 4>;
class BufferPool {
 public:
  static BufferPool& get() {
    static BufferPool pool;
    return pool;
  }
  std::deque<DepthBuffers> take() {
    std::lock_guard<std::mutex> l(m_);
    if (free_.empty()) return {};
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::deque<DepthBuffers> b) {
    std::lock_guard<std::mutex> l(m_);
    if (free_.size() < kMaxKept) free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kMaxKept = 4;  // walks at once (thin_delta runs two)
  std::mutex m_;
  std::vector<std::deque<DepthBuffers>> free_;
};

// Reads ahead: the children of consecutive internal siblings are read as one batch of up to
// kMaxBatch blocks, so a walk keeps many requests in flight (libaio) instead of one node's
// worth. Visitor callbacks still arrive in exact depth-first key order; only enter() (which
// decides what to read) runs ahead.
class Walker {
 public:
  static constexpr std::size_t kMaxBatch = 256;
  static constexpr std::size_t kMinAsync = 64;  // smaller batches are read when their turn comes
  static constexpr std::size_t kMinSlice = 32;  // blocks a worker takes at least

  Walker(IoEngine& io, const WalkOptions& opts, BtreeVisitor& v)
      : io_(io), opts_(opts), v_(v), prepare_(v.prepares_leaves()), views_(io.has_views()),
        bufs_(BufferPool::get().take()) {}
  ~Walker() { BufferPool::get().give(std::move(bufs_)); }
  Walker(const Walker&) = delete;
  Walker& operator=(const Walker&) = delete;

  Flow walk(BlockAddr root) {
    NodeContext ctx{root, 0, KeyRange{}};
    if (!v_.enter(ctx)) return Flow::kContinue;
    if (root >= io_.nr_blocks())
      return v_.damage({root, ctx.range, "btree root beyond the end of the metadata device" +
                                             range_str(root)});
    AlignedBuffer buf;
    const std::uint8_t* block = nullptr;
    int err = 0;
    if (!io_.view_many(std::span<const BlockAddr>(&root, 1), &block, std::span<int>(&err, 1))) {
      buf.resize(1);
      io_.read_many(std::span<const BlockAddr>(&root, 1), buf.data(), std::span<int>(&err, 1));
      block = buf.data();
    }
    if (err)
      return v_.damage({root, ctx.range, std::string("read error: ") + std::strerror(err) +
                                             range_str(root)});
    return visit_kids(std::span<const NodeContext>(&ctx, 1), &block, &err, nullptr, nullptr);
  }

 private:
  // An internal node that has been checked, with the children it will visit.
  struct Expanded {
    NodeContext ctx;
    const std::uint8_t* block;
    std::vector<Damage> pending;    // children that cannot be read
    std::vector<NodeContext> kids;  // children to read
  };
  struct Batch {
    std::vector<Expanded> group;
    std::vector<BlockAddr> addrs;
    std::vector<int> errs;
    std::vector<NodeContext> ctxs;       // of each block read
    std::vector<std::uint8_t> verified;  // kChecksum or kNodeOk, as found on the reading side
    std::vector<const std::uint8_t*> blocks;  // where each block is: in bufs, or a view
    AlignedBuffer* bufs = nullptr;            // nullptr when the engine hands out views
    AlignedBuffer* prepared = nullptr;  // a block's worth for each leaf (prepare_leaf)
    Pending<void> done;  // valid while the read runs on the helper thread
    ParallelTask task;   // or on the pool threads (split reads); last: joined first
  };

  std::optional<Damage> check(const NodeContext& ctx, const std::uint8_t* block,
                              bool verified = false) const {
    return check_node(ctx, block, opts_, verified);
  }

  // Decides which children of e.block to read (calls enter()), noting those that cannot be.
  void collect(Expanded& e) {
    NodeView n(e.block);
    std::uint32_t nr = n.nr_entries();
    e.kids.reserve(nr);
    for (std::uint32_t i = 0; i < nr; ++i) {
      KeyRange r{n.key(i), i + 1 < nr ? std::optional<std::uint64_t>(n.key(i + 1)) : e.ctx.range.end};
      NodeContext kid{n.value64(i), e.ctx.depth + 1, r};
      if (kid.addr >= io_.nr_blocks())
        e.pending.push_back({kid.addr, r, "child pointer beyond the end of the metadata device" +
                                              range_str(kid.addr)});
      else if (kid.addr == e.ctx.addr || on_path(kid.addr))
        e.pending.push_back({kid.addr, r, "cycle in btree" + range_str(kid.addr)});
      else if (v_.enter(kid))
        e.kids.push_back(kid);
    }
  }

  // What the reading side found out about a block (Batch::verified).
  enum : std::uint8_t { kUnchecked = 0, kChecksum = 1, kNodeOk = 2 };

  // Visits nodes already read (kids[i] is at blocks[i], errs[i] its read status,
  // verified[i] (if given) what is known good about it, prepared (if given) the prepared
  // leaves' areas, a block each), in order. Runs of internal siblings are expanded together.
  Flow visit_kids(std::span<const NodeContext> kids, const std::uint8_t* const* blocks,
                  const int* errs, const std::uint8_t* verified, const std::uint8_t* prepared) {
    std::size_t i = 0;
    while (i < kids.size()) {
      const std::uint8_t* block = blocks[i];
      if (errs[i]) {
        if (v_.damage({kids[i].addr, kids[i].range,
                       std::string("read error: ") + std::strerror(errs[i]) +
                           range_str(kids[i].addr)}) == Flow::kStop)
          return Flow::kStop;
        ++i;
        continue;
      }
      bool ok = verified && verified[i] == kNodeOk;
      if (auto d = ok ? std::nullopt : check(kids[i], block, verified && verified[i])) {
        if (v_.damage(*d) == Flow::kStop) return Flow::kStop;
        ++i;
        continue;
      }
      NodeView n(block);
      if (n.is_leaf()) {
        Flow f = ok && prepared ? v_.leaf_prepared(kids[i], n, prepared + i * kBlockSize)
                                : v_.leaf(kids[i], n);
        if (f == Flow::kStop) return Flow::kStop;
        ++i;
        continue;
      }
      // Runs of valid internal siblings whose children fit one batch. While one batch is
      // visited, the next one is read on a helper thread (I/O overlaps decoding).
      Batch slots[2];
      std::size_t cur = 0;
      i = form_batch(kids, blocks, errs, i, slots[cur]);
      start_read(slots[cur], /*async=*/false);
      for (;;) {
        Batch& b = slots[cur];
        Batch& next = slots[cur ^ 1];
        next.group.clear();
        std::size_t after = i;
        if (i < kids.size() && !errs[i] && !check(kids[i], blocks[i]) &&
            NodeView(blocks[i]).is_internal()) {
          after = form_batch(kids, blocks, errs, i, next);
          start_read(next, next.addrs.size() >= kMinAsync);
        }
        if (b.done.valid()) b.done.get();
        b.task.join();
        if (expand(b) == Flow::kStop) return Flow::kStop;
        if (next.group.empty()) break;
        i = after;
        cur ^= 1;
      }
    }
    return Flow::kContinue;
  }

  // Internal siblings kids[i..] whose children fit one batch, their enter() decisions made.
  // Returns the index after the group.
  std::size_t form_batch(std::span<const NodeContext> kids, const std::uint8_t* const* blocks,
                         const int* errs, std::size_t i, Batch& b) {
    b.group.clear();
    std::size_t total = 0, j = i;
    while (j < kids.size() && !errs[j]) {
      const std::uint8_t* bj = blocks[j];
      if (j > i && (check(kids[j], bj) || !NodeView(bj).is_internal())) break;
      if (!b.group.empty() && total + NodeView(bj).nr_entries() > kMaxBatch) break;
      b.group.push_back(Expanded{kids[j], bj, {}, {}});
      collect(b.group.back());
      total += b.group.back().kids.size();
      ++j;
    }
    b.addrs.clear();
    b.ctxs.clear();
    for (const auto& e : b.group)
      for (const auto& k : e.kids) {
        b.addrs.push_back(k.addr);
        b.ctxs.push_back(k);
      }
    b.errs.assign(b.addrs.size(), 0);
    b.blocks.assign(b.addrs.size(), nullptr);
    b.bufs = b.prepared = nullptr;
    if (b.addrs.empty()) return j;
    unsigned depth = b.group.front().ctx.depth;
    if (bufs_.size() <= depth) bufs_.resize(depth + 1);
    if (flip_.size() <= depth) flip_.resize(depth + 1);
    // Two buffers a depth, used in turn: the batch being visited and the one being read.
    unsigned f = flip_[depth];
    flip_[depth] ^= 1;
    // Grown geometrically: a fresh (zeroed, page-faulted) buffer for every slightly larger
    // batch cost a tenth of a warm check's CPU.
    // Batch buffers are only read into, prepared areas only written by prepare_leaf before
    // leaf_prepared reads them: neither is zeroed (resize_for_reads).
    auto fit = [&](AlignedBuffer& buf, bool for_reads) {
      std::size_t want = std::max(b.addrs.size(), std::min(kMaxBatch, 2 * buf.capacity()));
      if (buf.capacity() < b.addrs.size()) {
        if (for_reads)
          buf.resize_for_reads(want);
        else
          buf.resize(want);
      }
      return &buf;
    };
    if (!views_) b.bufs = fit(bufs_[depth][f], true);  // views: the blocks stay where they are
    if (prepare_) b.prepared = fit(bufs_[depth][2 + f], true);
    return j;
  }

  void start_read(Batch& b, bool async) {
    if (b.addrs.empty()) return;
    // Engines serialise concurrent batches (visitors may read too, e.g. space map bitmaps).
    // Checksums are verified on the reading thread: the visiting thread has the rest to do.
    b.verified.assign(b.addrs.size(), 0);
    // With worker threads, the batch is cut into slices, each checksummed (and, where the
    // engine reads in parallel, read) by one of them. Only the checks run out of order.
    // With views nothing is copied: the checks are the first touch of each block (the page
    // faults land on the threads that verify).
    std::size_t n = b.addrs.size();
    bool split_reads = !views_ && worker_count() > 1 && n / kMinSlice > 1 && io_.parallel_reads();
    auto slice = [this, &b, split_reads](std::size_t s, std::size_t slices) {
      std::size_t len = b.addrs.size();
      std::size_t lo = len * s / slices, hi = len * (s + 1) / slices;
      if (split_reads)
        io_.read_many(std::span<const BlockAddr>(b.addrs).subspan(lo, hi - lo),
                      b.bufs->block(lo), std::span<int>(b.errs).subspan(lo, hi - lo));
      // The node checks too (they need only the block and its context), and the leaves'
      // preparation: the visiting thread is left the rest.
      for (std::size_t k = lo; k < hi; ++k) {
        if (!views_) b.blocks[k] = b.bufs->block(k);
        const std::uint8_t* block = b.blocks[k];
        if (b.errs[k] || validate_block(block, b.addrs[k], BlockKind::kNode)) continue;
        b.verified[k] = check(b.ctxs[k], block, true) ? kChecksum : kNodeOk;
        if (b.prepared && b.verified[k] == kNodeOk && NodeView(block).is_leaf())
          v_.prepare_leaf(b.ctxs[k], NodeView(block), b.prepared->block(k));
      }
    };
    if (split_reads) {
      // Reads and checks in slices the pool threads start on now; the visiting thread takes
      // those left when it needs the batch (Batch::task.join()): no thread sits waiting
      // while another one reads, and a slice is small enough to share the tail.
      std::size_t slices = n / kMinSlice;
      b.task = ParallelTask(slices, [slice, slices](std::size_t s) { slice(s, slices); });
      if (!async) b.task.join();
      return;
    }
    auto read = [this, &b, n, slice] {
      std::size_t slices = std::min<std::size_t>(worker_count(), n / kMinSlice);
      if (views_)
        io_.view_many(b.addrs, b.blocks.data(), b.errs);
      else
        io_.read_many(b.addrs, b.bufs->data(), b.errs);
      if (slices > 1)
        run_parallel(slices, [&](std::size_t s) { slice(s, slices); });
      else
        slice(0, 1);
    };
    if (async)
      b.done = on_helper(read);
    else
      read();
  }

  // Visits each node of a batch that has been read, and its subtree, in order.
  Flow expand(Batch& b) {
    std::size_t off = 0;
    for (auto& e : b.group) {
      if (v_.internal(e.ctx, NodeView(e.block)) == Flow::kStop) return Flow::kStop;
      for (const auto& d : e.pending)
        if (v_.damage(d) == Flow::kStop) return Flow::kStop;
      path_.push_back(e.ctx.addr);
      Flow f = e.kids.empty() ? Flow::kContinue
                              : visit_kids(e.kids, b.blocks.data() + off, b.errs.data() + off,
                                           b.verified.data() + off,
                                           b.prepared ? b.prepared->block(off) : nullptr);
      path_.pop_back();
      if (f == Flow::kStop) return Flow::kStop;
      off += e.kids.size();
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
  const bool prepare_;             // the visitor prepares leaves on the reading side
  const bool views_;               // the engine hands out blocks in place: no batch copies
  std::vector<BlockAddr> path_;    // ancestors of the nodes being visited
  std::deque<DepthBuffers> bufs_;  // per depth; deque keeps references valid
  std::vector<unsigned> flip_;
};

}  // namespace

std::optional<Damage> check_node(const NodeContext& ctx, const std::uint8_t* block,
                                 const WalkOptions& opts, bool verified) {
  auto bad = [&](std::string what) { return Damage{ctx.addr, ctx.range, std::move(what)}; };
  if (!verified)
    if (auto d = validate_block(block, ctx.addr, BlockKind::kNode)) return bad(*d);
  NodeView n(block);
  if (auto d = check_node_shape(n, ctx.addr, opts.leaf_value_size)) return bad(*d);
  std::uint32_t nr = n.nr_entries();
  if (nr > 0 &&
      (n.key(0) < ctx.range.begin || (ctx.range.end && n.key(nr - 1) >= *ctx.range.end)))
    return bad("keys outside the range given by the parent" + range_str(ctx.addr));
  if (opts.check_fill && ctx.depth > 0 && nr < n.max_entries() / 3)
    return bad("too few entries (" + std::to_string(nr) + ") in non-root btree node" +
               range_str(ctx.addr));
  if (n.is_internal()) {
    if (nr == 0 && ctx.depth > 0) return bad("empty internal node" + range_str(ctx.addr));
    if (ctx.depth + 1 >= opts.max_depth) return bad("btree too deep" + range_str(ctx.addr));
  }
  return std::nullopt;
}

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
