// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/btree/btree_builder.h"

#include <algorithm>
#include <cstring>

#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {

namespace {
constexpr std::uint32_t kInternalMax = max_entries_for(8);
}

std::vector<std::uint32_t> level_sizes(std::uint64_t n, std::uint32_t max) {
  std::vector<std::uint32_t> out;
  if (n == 0) return out;
  std::uint64_t full = n >= 2ull * max ? n / max - 1 : 0;  // emitted whenever 2*max are buffered
  out.assign(full, max);
  std::uint64_t rest = n - full * max;
  if (rest <= max) {
    out.push_back(static_cast<std::uint32_t>(rest));
  } else {
    out.push_back(static_cast<std::uint32_t>(rest / 2));
    out.push_back(static_cast<std::uint32_t>(rest - rest / 2));
  }
  return out;
}

std::uint64_t level_nodes(std::uint64_t n, std::uint32_t max) {
  if (n == 0) return 0;
  std::uint64_t full = n >= 2ull * max ? n / max - 1 : 0;
  return full + (n - full * max <= max ? 1 : 2);
}

std::uint64_t internal_nodes(std::uint64_t level) {
  std::uint64_t total = 0;
  while (level > 1) {
    level = level_nodes(level, kInternalMax);
    total += level;
  }
  return total;
}

std::uint64_t tree_nodes(std::uint64_t n, std::uint32_t leaf_value_size) {
  if (n == 0) return 1;
  std::uint64_t leaves = level_nodes(n, max_entries_for(leaf_value_size));
  return leaves + internal_nodes(leaves);
}

void LeafLevelCounter::add(std::uint64_t n) {
  pending_ += n;
  if (pending_ >= 2ull * max_) {
    std::uint64_t e = pending_ / max_ - 1;
    own_ += e;
    pending_ -= e * max_;
  }
}

void LeafLevelCounter::flush() {
  own_ += pending_ > max_ ? 2 : pending_ > 0 ? 1 : 0;
  pending_ = 0;
}

void LeafLevelCounter::add_node() {
  flush();
  ++shared_;
}

std::uint64_t LeafLevelCounter::finish() {
  flush();
  if (own_ + shared_ == 0) own_ = 1;  // an empty tree is one empty leaf
  return own_ + internal_nodes(own_ + shared_);
}

void encode_node(std::uint8_t* p, BlockAddr addr, bool leaf, std::uint32_t vsize,
                 std::uint32_t nr, const std::uint64_t* keys, const std::uint8_t* values) {
  std::uint32_t max = max_entries_for(vsize);
  store_le32(p + 4, leaf ? kNodeLeaf : kNodeInternal);
  store_le64(p + 8, addr);
  store_le32(p + 16, nr);
  store_le32(p + 20, max);
  store_le32(p + 24, vsize);
  std::memcpy(p + kNodeHeaderSize, keys, 8ull * nr);
  std::memcpy(p + kNodeHeaderSize + 8ull * max, values, std::size_t{vsize} * nr);
  stamp_checksum(p, BlockKind::kNode);
}

BtreeBuilder::BtreeBuilder(BlockWriter& w, std::uint32_t value_size)
    : w_(w), vsize_(value_size), max_(max_entries_for(value_size)) {
  keys_.resize(std::size_t{kSpan} * max_);
  values_.resize(std::size_t{kSpan} * max_ * vsize_);
}

void BtreeBuilder::add(std::uint64_t key, const std::uint8_t* value) {
  keys_[base_ + nr_] = key;
  std::memcpy(values_.data() + std::size_t{base_ + nr_} * vsize_, value, vsize_);
  if (++nr_ == 2 * max_) emit_leaf(max_);
}

// The fixed-size forms store in place (a memcpy call of vsize_ bytes per entry shows in
// restore profiles).
template <std::uint32_t kSize, typename T, void (*kStore)(std::uint8_t*, T)>
void BtreeBuilder::add_fixed(std::uint64_t key, T value) {
  if (vsize_ != kSize) {  // another value size: the number little-endian, cut or zero-padded
    std::vector<std::uint8_t> v(std::max<std::size_t>(vsize_, kSize), 0);
    kStore(v.data(), value);
    return add(key, v.data());
  }
  keys_[base_ + nr_] = key;
  kStore(values_.data() + std::size_t{base_ + nr_} * kSize, value);
  if (++nr_ == 2 * max_) emit_leaf(max_);
}

void BtreeBuilder::add_u64(std::uint64_t key, std::uint64_t value) {
  add_fixed<8, std::uint64_t, store_le64>(key, value);
}

void BtreeBuilder::add_u32(std::uint64_t key, std::uint32_t value) {
  add_fixed<4, std::uint32_t, store_le32>(key, value);
}

template <std::uint32_t kSize, typename T, void (*kStore)(std::uint8_t*, T)>
void BtreeBuilder::add_fixed_run(std::uint64_t key, T value, T step, std::uint64_t n) {
  if (vsize_ != kSize) {
    for (; n; --n, ++key, value += step) add_fixed<kSize, T, kStore>(key, value);
    return;
  }
  while (n) {
    // Up to the room left before the next emit_leaf: what add_fixed would do one at a time.
    std::uint32_t k = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, 2 * max_ - nr_));
    std::uint64_t* keys = keys_.data() + base_ + nr_;
    std::uint8_t* values = values_.data() + std::size_t{base_ + nr_} * kSize;
    for (std::uint32_t i = 0; i < k; ++i, value += step) {
      keys[i] = key + i;
      kStore(values + std::size_t{i} * kSize, value);
    }
    key += k;
    n -= k;
    if ((nr_ += k) == 2 * max_) emit_leaf(max_);
  }
}

void BtreeBuilder::add_u64_run(std::uint64_t key, std::uint64_t value, std::uint64_t step,
                               std::uint64_t n) {
  add_fixed_run<8, std::uint64_t, store_le64>(key, value, step, n);
}

void BtreeBuilder::add_u32_run(std::uint64_t key, std::uint32_t value, std::uint64_t n) {
  add_fixed_run<4, std::uint32_t, store_le32>(key, value, 0, n);
}

void BtreeBuilder::emit_leaf(std::uint32_t n) {
  BlockAddr at;
  std::uint8_t* p = w_.alloc(at);
  encode_node(p, at, true, vsize_, n, keys_.data() + base_,
              values_.data() + std::size_t{base_} * vsize_);
  level_.emplace_back(keys_[base_], at);
  base_ += n;
  nr_ -= n;
  if (nr_ == 0) {
    base_ = 0;
  } else if (base_ + 2 * max_ > kSpan * max_) {  // no room for a full 2 * max_ after base_
    std::memmove(keys_.data(), keys_.data() + base_, 8ull * nr_);
    std::memmove(values_.data(), values_.data() + std::size_t{base_} * vsize_,
                 std::size_t{nr_} * vsize_);
    base_ = 0;
  }
}

void BtreeBuilder::flush() {
  if (nr_ > max_) emit_leaf(nr_ / 2);
  if (nr_ > 0) emit_leaf(nr_);
}

void BtreeBuilder::add_node(std::uint64_t first_key, BlockAddr addr) {
  flush();
  level_.emplace_back(first_key, addr);
}

BlockAddr BtreeBuilder::finish() {
  flush();
  if (level_.empty()) {
    BlockAddr at;
    std::uint8_t* p = w_.alloc(at);
    encode_node(p, at, true, vsize_, 0, keys_.data(), values_.data());
    return at;
  }
  std::vector<std::pair<std::uint64_t, BlockAddr>> up;
  std::vector<std::uint64_t> keys(kInternalMax), vals(kInternalMax);
  while (level_.size() > 1) {
    up.clear();
    std::size_t i = 0;
    for (std::uint32_t n : level_sizes(level_.size(), kInternalMax)) {
      for (std::uint32_t k = 0; k < n; ++k) {
        keys[k] = level_[i + k].first;
        vals[k] = level_[i + k].second;
      }
      BlockAddr at;
      std::uint8_t* p = w_.alloc(at);
      encode_node(p, at, false, 8, n, keys.data(), reinterpret_cast<std::uint8_t*>(vals.data()));
      up.emplace_back(keys[0], at);
      i += n;
    }
    level_.swap(up);
  }
  BlockAddr root = level_[0].second;
  level_.clear();
  return root;
}

}  // namespace thinmeta::pdata
