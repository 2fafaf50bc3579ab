// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree_cursor.h"

#include <cstring>
#include <string>

#include "persistent-data/checksum.h"

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
  return NodeView(f.buf.data()).value64(f.index);
}

KeyRange BtreeCursor::subtree_range() const {
  if (root_pending_) return root_range_;
  const Frame& f = frames_[depth_ - 1];
  NodeView n(f.buf.data());
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
  const std::string where = " (block " + std::to_string(addr) + ")";
  if (d + 1 > max_depth_) return damage(addr, "btree too deep" + where);
  for (std::size_t i = 0; i < d; ++i)
    if (frames_[i].addr == addr) return damage(addr, "cycle in btree" + where);
  if (frames_.size() <= d) frames_.resize(d + 1);
  Frame& f = frames_[d];
  f.buf.resize(1);
  if (auto bad = d == 0 ? read_node(io_, addr, value_size_, f.buf.data())
                        : read_child(addr, f.buf.data()))
    return damage(addr, *bad);
  NodeView n(f.buf.data());
  std::uint32_t nr = n.nr_entries();
  if (nr && (n.key(0) < range.begin || (range.end && n.key(nr - 1) >= *range.end)))
    return damage(addr, "keys outside the range given by the parent" + where);
  if (d > 0 && nr < n.max_entries() / 3)
    return damage(addr, "too few entries (" + std::to_string(nr) + ") in non-root btree node" +
                            where);
  f.addr = addr;
  f.range = range;
  f.index = 0;
  f.ahead_n = 0;
  f.nr = nr;
  f.is_leaf = n.is_leaf();
  root_pending_ = false;
  depth_ = d + 1;
  pop_exhausted();
  return {};
}

std::optional<std::string> BtreeCursor::read_child(BlockAddr addr, std::uint8_t* out) {
  constexpr std::uint32_t kMaxAhead = 64;
  Frame& p = frames_[depth_ - 1];
  if (!(addr >= p.ahead_first && addr < p.ahead_first + p.ahead_n)) {
    NodeView n(p.buf.data());
    std::uint32_t count = 1;
    while (p.index + count < p.nr && count < kMaxAhead &&
           n.value64(p.index + count) == addr + count && addr + count < io_.nr_blocks())
      ++count;
    p.ahead_n = 0;
    if (count == 1 || addr >= io_.nr_blocks()) return read_node(io_, addr, value_size_, out);
    p.ahead.resize(count);
    std::vector<BlockAddr> addrs(count);
    std::vector<int> errs(count);
    for (std::uint32_t i = 0; i < count; ++i) addrs[i] = addr + i;
    io_.read_many(addrs, p.ahead.data(), errs);
    for (int e : errs)
      if (e) return read_node(io_, addr, value_size_, out);
    p.ahead_first = addr;
    p.ahead_n = count;
  }
  std::memcpy(out, p.ahead.block(addr - p.ahead_first), kBlockSize);
  if (auto bad = validate_block(out, addr, BlockKind::kNode)) return bad;
  return check_node_shape(NodeView(out), addr, value_size_);
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
