// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree/btree_cursor.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "persistent-data/checksum.h"
#include "persistent-data/io/io_plan.h"

namespace thinmeta::pdata {

void BtreeCursor::reset(BlockAddr root, KeyRange range) {
  root_ = root;
  root_range_ = range;
  root_pending_ = true;
  depth_ = 0;
}

BtreeCursor::At BtreeCursor::at() const {
  if (root_pending_) return At::kSubtree;
  if (depth_ == 0) return At::kEnd;
  return frames_[depth_ - 1].is_leaf ? At::kEntry : At::kSubtree;
}

BlockAddr BtreeCursor::subtree() const {
  if (root_pending_) return root_;
  const Frame& f = frames_[depth_ - 1];
  return NodeView(f.node).value64(f.index);
}

KeyRange BtreeCursor::subtree_range() const {
  if (root_pending_) return root_range_;
  const Frame& f = frames_[depth_ - 1];
  NodeView n(f.node);
  KeyRange r{n.key(f.index), f.range.end};
  if (f.index + 1 < f.nr) r.end = n.key(f.index + 1);
  return r;
}

Result<> BtreeCursor::damage(BlockAddr b, const std::string& what) const {
  (void)b;
  return fail(Errc::kDamage, what);
}

Result<> BtreeCursor::descend() {
  BlockAddr addr = subtree();
  KeyRange range = subtree_range();
  std::size_t d = root_pending_ ? 0 : depth_;
  auto where = [addr] { return " (block " + std::to_string(addr) + ")"; };
  if (d + 1 > max_depth_) return damage(addr, "btree too deep" + where());
  for (std::size_t i = 0; i < d; ++i)
    if (frames_[i].addr == addr) return damage(addr, "cycle in btree" + where());
  if (frames_.size() <= d) frames_.resize(d + 1);
  Frame& f = frames_[d];
  std::optional<std::string> bad;
  if (d == 0) {
    f.buf.resize_for_reads(1);
    f.node = f.buf.data();
    bad = read_node(io_, addr, value_size_, f.buf.data());
  } else {
    bad = read_child(addr, f);
  }
  if (bad) return damage(addr, *bad);
  NodeView n(f.node);
  std::uint32_t nr = n.nr_entries();
  if (nr && (n.key(0) < range.begin || (range.end && n.key(nr - 1) >= *range.end)))
    return damage(addr, "keys outside the range given by the parent" + where());
  if (d > 0 && nr < n.max_entries() / 3)
    return damage(addr, "too few entries (" + std::to_string(nr) + ") in non-root btree node" +
                            where());
  f.addr = addr;
  f.range = range;
  f.index = 0;
  next_group_size(f);  // the node it held before tells how the next groups should start
  f.ahead_n = 0;
  if (f.next && f.next->owner != addr) {  // read ahead for the node this frame held before
    f.next->done = Pending<void>();
    f.next->valid = false;
  }
  f.nr = nr;
  f.is_leaf = n.is_leaf();
  root_pending_ = false;
  depth_ = d + 1;
  pop_exhausted();
  return {};
}

namespace {
constexpr std::uint32_t kMinAhead = 16;   // children a group reads at first
constexpr std::uint32_t kMaxAhead = 128;  // and at most (512 KiB: fresh pages cost a fault each)
}  // namespace

void BtreeCursor::next_group_size(Frame& p) {
  if (p.group == 0) p.group = kMinAhead;
  if (p.ahead_n == 0) return;  // no group read since the last verdict: nothing to go by
  p.group = p.ahead_used == p.ahead_n ? std::min(2 * p.group, kMaxAhead) : kMinAhead;
  p.ahead_used = 0;
  p.ahead_n = 0;
}

std::uint32_t BtreeCursor::form_group(const NodeView& n, std::uint32_t nr, std::uint32_t from,
                                      std::uint32_t max, BlockAddr nr_blocks,
                                      std::vector<BlockAddr>& addrs) {
  addrs.clear();
  if (from >= nr || n.value64(from) >= nr_blocks) return from;
  addrs.push_back(n.value64(from));
  std::uint32_t i = from + 1;
  for (; i < nr && addrs.size() < max; ++i) {
    BlockAddr next = n.value64(i), last = addrs.back();
    if (next <= last || next - last - 1 > kMaxGap || next >= nr_blocks) break;
    addrs.push_back(next);
  }
  return i;
}

void BtreeCursor::read_next_group() {
  Frame& p = frames_[depth_ - 1];
  if (!p.next) p.next = std::make_unique<Group>();
  Group& g = *p.next;
  g.done = Pending<void>();  // a read still running (of a group dropped) is waited for
  g.valid = false;
  g.max = std::min(2 * p.group, kMaxAhead);
  if (p.ahead_end < p.nr) {  // more children of this node
    g.owner = p.addr;
    g.read_owner = false;
    g.end = form_group(NodeView(p.node), p.nr, p.ahead_end, g.max, io_.nr_blocks(), g.addrs);
    if (g.addrs.empty()) return;
  } else {
    // The first children of the node's next sibling, which the job reads first (its
    // contents are checked again when the cursor gets there; here they only choose blocks).
    if (depth_ < 2) return;
    Frame& gp = frames_[depth_ - 2];
    if (gp.index + 1 >= gp.nr) return;
    BlockAddr sib = NodeView(gp.node).value64(gp.index + 1);
    if (sib >= io_.nr_blocks()) return;
    g.owner = sib;
    g.read_owner = true;
    g.owner_buf.resize_for_reads(1);
  }
  g.valid = true;
  IoEngine* io = &io_;
  Group* gptr = &g;
  std::uint32_t vs = value_size_;
  g.done = on_helper(
      [io, gptr, vs] {
    Group& j = *gptr;
    if (j.read_owner) {
      j.addrs.clear();
      j.owner_err = 0;
      io->read_many(std::span<const BlockAddr>(&j.owner, 1), j.owner_buf.data(),
                    std::span<int>(&j.owner_err, 1));
      const std::uint8_t* ob = j.owner_buf.data();
      if (j.owner_err || validate_block(ob, j.owner, BlockKind::kNode) ||
          check_node_shape(NodeView(ob), j.owner, vs) || NodeView(ob).is_leaf())
        return;
      NodeView sn(ob);
      j.end = form_group(sn, sn.nr_entries(), 0, j.max, io->nr_blocks(), j.addrs);
    }
    j.errs.assign(j.addrs.size(), 0);
    j.buf.resize_for_reads(kMaxAhead);  // once: groups grow, and only what is read is touched
    io->read_many(j.addrs, j.buf.data(), j.errs);
      },
      lane_);
}

unsigned BtreeCursor::next_lane() {
  static std::atomic<unsigned> n{0};
  return n.fetch_add(1, std::memory_order_relaxed) % kHelperLanes;
}

bool BtreeCursor::take_next_group(Frame& p, BlockAddr addr) {
  if (!p.next || !p.next->valid || p.next->owner != p.addr) return false;
  Group& g = *p.next;
  g.done = Pending<void>();  // waits for the job
  if (std::find(g.addrs.begin(), g.addrs.end(), addr) == g.addrs.end()) return false;
  g.valid = false;
  next_group_size(p);
  std::swap(p.ahead, g.buf);
  p.ahead_addrs.swap(g.addrs);
  p.ahead_end = g.end;
  bool ok = std::all_of(g.errs.begin(), g.errs.end(), [](int e) { return e == 0; });
  p.ahead_n = ok ? static_cast<std::uint32_t>(p.ahead_addrs.size()) : 0;
  return true;
}

std::optional<std::string> BtreeCursor::read_child(BlockAddr addr, Frame& f) {
  Frame& p = frames_[depth_ - 1];
  auto check = [&](const std::uint8_t* node) -> std::optional<std::string> {
    f.node = node;
    if (auto bad = validate_block(node, addr, BlockKind::kNode)) return bad;
    return check_node_shape(NodeView(node), addr, value_size_);
  };
  // The child itself read ahead as the owner of its own first children (read_next_group):
  // its block moves into the frame (the group's owner_buf is read into again later, while
  // the frame may still hold this node).
  if (f.next && f.next->valid && f.next->owner == addr && f.next->read_owner) {
    f.next->done = Pending<void>();
    if (!f.next->owner_err) {
      std::swap(f.buf, f.next->owner_buf);
      return check(f.buf.data());
    }
  }
  // Children read ahead sit at their index's place in the group (form_group takes them in
  // index order without a hole), so the one at p.index is found without a search.
  auto find = [&]() -> const std::uint8_t* {
    std::uint32_t from = p.ahead_end - static_cast<std::uint32_t>(p.ahead_addrs.size());
    if (p.index < from || p.index - from >= p.ahead_n) return nullptr;
    std::uint32_t i = p.index - from;
    if (p.ahead_addrs[i] != addr) return nullptr;
    ++p.ahead_used;
    return p.ahead.block(i);
  };
  const std::uint8_t* got = find();
  if (!got && take_next_group(p, addr)) got = find();
  if (!got) {
    next_group_size(p);
    p.ahead_n = 0;
    auto single = [&] {
      f.buf.resize_for_reads(1);
      f.node = f.buf.data();
      return read_node(io_, addr, value_size_, f.buf.data());
    };
    if (addr >= io_.nr_blocks()) return single();
    p.ahead_end = form_group(NodeView(p.node), p.nr, p.index, p.group, io_.nr_blocks(),
                             p.ahead_addrs);
    if (p.ahead_addrs.size() <= 1) return single();
    auto count = static_cast<std::uint32_t>(p.ahead_addrs.size());
    p.ahead.resize_for_reads(kMaxAhead);
    std::vector<int> errs(count);
    io_.read_many(p.ahead_addrs, p.ahead.data(), errs);
    for (int e : errs)
      if (e) return single();
    p.ahead_n = count;
    p.ahead_used = 1;
    got = p.ahead.block(0);
  }
  std::uint32_t pos = p.index - (p.ahead_end - static_cast<std::uint32_t>(p.ahead_addrs.size()));
  if (p.group > kMinAhead && 2 * pos + 1 >= p.ahead_n && !(p.next && p.next->valid))
    read_next_group();
  return check(got);
}

void BtreeCursor::pop_exhausted() {
  while (depth_ > 0 && frames_[depth_ - 1].index >= frames_[depth_ - 1].nr) {
    --depth_;
    if (depth_ > 0) ++frames_[depth_ - 1].index;
  }
}

void BtreeCursor::skip() {
  if (root_pending_) {
    root_pending_ = false;
    depth_ = 0;
    return;
  }
  if (depth_ == 0) return;
  ++frames_[depth_ - 1].index;
  pop_exhausted();
}

void BtreeCursor::seek_in_leaf(std::uint32_t i) {
  frames_[depth_ - 1].index = i;
  pop_exhausted();
}

void BtreeCursor::skip_leaf() {
  if (root_pending_ || depth_ == 0 || !frames_[depth_ - 1].is_leaf) return skip();
  frames_[depth_ - 1].index = frames_[depth_ - 1].nr;
  pop_exhausted();
}

Result<std::optional<NodeView>> BtreeCursor::next_leaf() {
  for (;;) {
    switch (at()) {
      case At::kEnd:
        return std::optional<NodeView>();
      case At::kEntry:
        return std::optional<NodeView>(leaf());
      case At::kSubtree:
        THINMETA_CHECK(descend());
        break;
    }
  }
}

}  // namespace thinmeta::pdata
