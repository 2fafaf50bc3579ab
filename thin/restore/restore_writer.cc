// SPDX-License-Identifier: GPL-3.0-or-later
// The writing half of the Restorer: plan every block from entry counts, check the space, then
// write in allocation order. Layout: block 0 superblock; the shared <def> leaves; each device's
// tree (leaves, then internal levels) in id order; the top level of the mapping tree; the
// details tree; the data space map; the metadata space map (which counts all of the above,
// itself included).
#include <algorithm>
#include <optional>

#include "persistent-data/btree/btree_builder.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/space_map/space_map_writer.h"
#include "thin/restore/restorer.h"

namespace thinmeta::thin {

using pdata::BlockAddr;
using pdata::BtreeBuilder;
using pdata::LeafLevelCounter;
using pdata::RunCounts;

struct Restorer::Plan {
  BlockAddr nr_meta = 0;  // blocks of the metadata device that the space map covers
  BlockAddr total = 0;    // blocks written, block 0 included
  pdata::PagedCounts own;  // data counts (in-memory mode)
  const pdata::PagedCounts* stream = nullptr;  // data counts of the first pass (streaming)
  std::uint64_t meta_overflow = 0;  // metadata blocks with a count >= 3 (shared <def> leaves)
  const pdata::PagedCounts& data() const { return stream ? *stream : own; }
};

namespace {

constexpr std::uint32_t kLeafMax = pdata::max_entries_for(kMappingValueSize);
constexpr std::uint32_t kMinFill = kLeafMax / 3;
// pack_block_time(d + 1, t) - pack_block_time(d, t): a run's next packed mapping value.
constexpr std::uint64_t kNextDataBlock = std::uint64_t{1} << 24;

// Calls fn(virt, data, len, time) for the runs (or parts of runs) making up leaf j of a def.
template <typename Fn>
void for_each_leaf_run(const RestoreDef& d, std::size_t j, Fn&& fn) {
  auto [r, off] = d.leaf_start[j];
  std::uint64_t left = d.leaf_sizes[j];
  while (left) {
    const RestoreItem& it = d.runs[r];
    std::uint64_t n = std::min(left, it.end - it.begin - off);
    fn(it.begin + off, it.data + off, n, it.time);
    left -= n;
    off = 0;
    ++r;
  }
}

// The leaf level of one device: its runs, and for each def it refers to, each leaf either
// linked (shared) or copied in. A leaf is linked only when that keeps every non-root node at
// least a third full: the leaf itself, the entries pending before it, and everything after it
// in the device each hold 0 or >= max/3 entries. Count and build passes decide identically
// because `out.pending()` is the same in both.
template <typename Out>
void walk_device(const RestoreDevice& dev, std::vector<RestoreDef>& defs, Out& out) {
  std::uint64_t remaining = dev.details.mapped_blocks;
  for (const RestoreItem& it : dev.items) {
    if (it.def == RestoreItem::kRun) {
      out.run(it.begin, it.data, it.end - it.begin, it.time);
      remaining -= it.end - it.begin;
      continue;
    }
    RestoreDef& d = defs[it.def];
    for (std::size_t j = 0; j < d.leaf_sizes.size(); ++j) {
      std::uint64_t size = d.leaf_sizes[j];
      remaining -= size;
      std::uint64_t pending = out.pending();
      if (size >= kMinFill && (pending == 0 || pending >= kMinFill) &&
          (remaining == 0 || remaining >= kMinFill))
        out.shared(d, j);
      else
        for_each_leaf_run(d, j, [&](std::uint64_t v, std::uint64_t db, std::uint64_t n,
                                    std::uint32_t t) { out.run(v, db, n, t); });
    }
  }
}

struct CountOut {
  LeafLevelCounter leaves{kMappingValueSize};
  pdata::PagedCounts& data;
  std::uint64_t pending() const { return leaves.pending(); }
  void run(std::uint64_t, std::uint64_t db, std::uint64_t n, std::uint32_t) {
    leaves.add(n);
    data.add(db, n);
  }
  void shared(RestoreDef& d, std::size_t j) {
    leaves.add_node();
    ++d.uses[j];
  }
};

struct BuildOut {
  BtreeBuilder tree;
  std::uint64_t pending() const { return tree.pending(); }
  void run(std::uint64_t v, std::uint64_t db, std::uint64_t n, std::uint32_t t) {
    tree.add_u64_run(v, pack_block_time(db, t), kNextDataBlock, n);
  }
  void shared(RestoreDef& d, std::size_t j) {
    const RestoreItem& first = d.runs[d.leaf_start[j].first];
    tree.add_node(first.begin + d.leaf_start[j].second, d.addrs[j]);
  }
};

// Streaming mode's second pass: builds each device's tree as its mappings come again.
class ReplaySink final : public MetadataSink {
 public:
  ReplaySink(pdata::BlockWriter& w, const std::vector<RestoreDevice>& devs) : w_(w), devs_(devs) {}
  Result<> begin_superblock(const SuperblockInfo&) override { return {}; }
  Result<> end_superblock() override { return {}; }
  Result<> begin_device(const DeviceInfo& dev) override {
    if (roots_.size() >= devs_.size() || devs_[roots_.size()].id != dev.dev_id) return changed();
    tree_.emplace(w_, kMappingValueSize);
    next_ = 0;
    count_ = 0;
    return {};
  }
  Result<> end_device() override {
    if (!tree_ || count_ != devs_[roots_.size()].details.mapped_blocks) return changed();
    roots_.push_back(tree_->finish());
    tree_.reset();
    return {};
  }
  Result<> map(const MappingRun& r) override {
    if (!tree_ || (count_ && r.thin_begin < next_)) return changed();
    tree_->add_u64_run(r.thin_begin, pack_block_time(r.data_begin, r.time), kNextDataBlock, r.len);
    next_ = r.thin_begin + r.len;
    count_ += r.len;
    return {};
  }
  std::vector<BlockAddr> take_roots() { return std::move(roots_); }
  std::size_t nr_devices() const { return roots_.size(); }

 private:
  static Result<> changed() {
    return fail(Errc::kBadFormat, "the input changed while it was being restored");
  }
  pdata::BlockWriter& w_;
  const std::vector<RestoreDevice>& devs_;
  std::optional<BtreeBuilder> tree_;
  std::uint64_t next_ = 0, count_ = 0;
  std::vector<BlockAddr> roots_;
};

}  // namespace

Result<std::vector<BlockAddr>> Restorer::replay_devices(pdata::BlockWriter& w,
                                                        const Replay& replay) {
  ReplaySink sink(w, devices_);
  THINMETA_CHECK(replay(sink));
  if (sink.nr_devices() != devices_.size())
    return fail(Errc::kBadFormat, "the input changed while it was being restored");
  return sink.take_roots();
}

Result<Restorer::Plan> Restorer::plan(BlockAddr nr_blocks) {
  if (!done_) return fail(Errc::kBadFormat, "incomplete source metadata");
  Plan p;
  p.nr_meta = std::min(nr_blocks, pdata::kMaxMetadataBlocks);
  BlockAddr total = 1;  // the superblock
  std::uint64_t meta_overflow = 0;
  if (opts_.streaming) {
    stream_data_.finish();
    p.stream = &stream_data_;
    total += stream_blocks_;
    return finish_plan(std::move(p), total, meta_overflow);
  }
  std::sort(devices_.begin(), devices_.end(),
            [](const RestoreDevice& a, const RestoreDevice& b) { return a.id < b.id; });
  for (RestoreDef& d : defs_) {
    std::vector<std::uint32_t> sizes = pdata::level_sizes(d.nr_entries, kLeafMax);
    d.leaf_sizes = sizes;
    d.leaf_start.clear();
    std::size_t r = 0;
    std::uint64_t off = 0;
    for (std::uint32_t s : sizes) {
      d.leaf_start.emplace_back(r, off);
      std::uint64_t left = s;
      while (left) {
        std::uint64_t n = std::min(left, d.runs[r].end - d.runs[r].begin - off);
        left -= n;
        off += n;
        if (off == d.runs[r].end - d.runs[r].begin) {
          ++r;
          off = 0;
        }
      }
    }
    d.uses.assign(sizes.size(), 0);
    d.addrs.assign(sizes.size(), 0);
  }

  for (const RestoreDevice& dev : devices_) {
    CountOut out{LeafLevelCounter(kMappingValueSize), p.own};
    walk_device(dev, defs_, out);
    total += out.leaves.finish();
  }
  for (RestoreDef& d : defs_)
    for (std::size_t j = 0; j < d.uses.size(); ++j) {
      if (!d.uses[j]) continue;
      ++total;
      meta_overflow += d.uses[j] >= 3;
      for_each_leaf_run(d, j, [&](std::uint64_t, std::uint64_t db, std::uint64_t n,
                                  std::uint32_t) { p.own.add(db, n); });
    }
  p.own.finish();
  return finish_plan(std::move(p), total, meta_overflow);
}

Result<Restorer::Plan> Restorer::finish_plan(Plan p, BlockAddr total,
                                             std::uint64_t meta_overflow) {
  std::uint64_t nr_data = sb_.data_sm.nr_blocks;
  p.meta_overflow = meta_overflow;
  total += pdata::tree_nodes(devices_.size(), kMappingValueSize);
  total += pdata::tree_nodes(devices_.size(), kDetailsValueSize);
  total += pdata::data_space_map_blocks(nr_data, p.data().nr_overflow());
  total += pdata::metadata_space_map_blocks(p.nr_meta, meta_overflow);
  p.total = total;
  if (total > p.nr_meta)
    return fail(Errc::kNoSpace, "Output file too small: the metadata needs " +
                                    std::to_string(total) + " blocks of 4096 bytes, the output has " +
                                    std::to_string(p.nr_meta));
  return p;
}

Result<BlockAddr> Restorer::blocks_needed(BlockAddr nr_blocks) {
  auto p = plan(nr_blocks);
  if (!p && p.error().code != Errc::kNoSpace) return std::unexpected(p.error());
  return p ? p->total : 0;
}

Result<RestoreStats> Restorer::commit(pdata::IoEngine& io) {
  if (opts_.streaming) return fail(Errc::kInvalidArgument, "streaming restore without input");
  THINMETA_TRY(Plan p, plan(io.nr_blocks()));
  return write(io, p, nullptr);
}

Result<RestoreStats> Restorer::commit(pdata::IoEngine& io, const Replay& replay) {
  THINMETA_TRY(Plan p, plan(io.nr_blocks()));
  return write(io, p, opts_.streaming ? &replay : nullptr);
}

Result<RestoreStats> Restorer::write(pdata::IoEngine& io, const Plan& p, const Replay* replay) {
  RunCounts meta;
  meta.add(0, p.total);

  // Invalidate the old superblock first: from here on a failure leaves no valid superblock.
  pdata::AlignedBuffer sb_block(1);
  THINMETA_CHECK(io.write(0, sb_block.data()));
  THINMETA_CHECK(io.flush());

  pdata::BlockWriter w(&io, 1, p.nr_meta, kRestoreBatchBlocks);
  // The data space map needs only the counts: with a second worker it is built on helper lane
  // 1 while this thread builds the trees, by its own writer at its planned addresses (its
  // write jobs join this writer's on lane 0). The blocks and addresses are the same; only the
  // order of the writes differs, and all of them end before the flush and the superblock.
  const std::uint64_t nr_data = sb_.data_sm.nr_blocks;
  const BlockAddr dsm_blocks = pdata::data_space_map_blocks(nr_data, p.data().nr_overflow());
  const BlockAddr dsm_first =
      p.total - pdata::metadata_space_map_blocks(p.nr_meta, p.meta_overflow) - dsm_blocks;
  std::optional<pdata::BlockWriter> dsm_w;
  pdata::Pending<pdata::SmRoot> dsm;
  if (pdata::worker_count() > 1) {
    dsm_w.emplace(&io, dsm_first, dsm_first + dsm_blocks, kRestoreBatchBlocks);
    dsm = pdata::on_helper(
        [&dsm_w, &p, nr_data] { return pdata::write_data_space_map(*dsm_w, p.data(), nr_data); },
        1);
  }
  std::vector<std::uint64_t> keys(kLeafMax), values(kLeafMax);
  for (RestoreDef& d : defs_)
    for (std::size_t j = 0; j < d.uses.size(); ++j) {
      if (!d.uses[j]) continue;
      std::uint32_t n = 0;
      for_each_leaf_run(d, j, [&](std::uint64_t v, std::uint64_t db, std::uint64_t len,
                                  std::uint32_t t) {
        for (std::uint64_t i = 0; i < len; ++i, ++n) {
          keys[n] = v + i;
          values[n] = pack_block_time(db + i, t);
        }
      });
      std::uint8_t* blk = w.alloc(d.addrs[j]);
      pdata::encode_node(blk, d.addrs[j], true, kMappingValueSize, n, keys.data(),
                         reinterpret_cast<const std::uint8_t*>(values.data()));
      if (d.uses[j] > 1) meta.add(d.addrs[j], 1, d.uses[j] - 1);
    }

  std::vector<BlockAddr> roots;
  std::uint64_t nr_mappings = 0;
  if (replay) {
    THINMETA_TRY(roots, replay_devices(w, *replay));
    // Trees were built in input order; the top level and the details go in id order.
    std::vector<std::size_t> order(devices_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return devices_[a].id < devices_[b].id; });
    std::vector<RestoreDevice> devs;
    std::vector<BlockAddr> rts;
    for (std::size_t i : order) {
      devs.push_back(std::move(devices_[i]));
      rts.push_back(roots[i]);
    }
    devices_ = std::move(devs);
    roots = std::move(rts);
  } else {
    for (const RestoreDevice& dev : devices_) {
      BuildOut out{BtreeBuilder(w, kMappingValueSize)};
      walk_device(dev, defs_, out);
      roots.push_back(out.tree.finish());
    }
  }
  for (const RestoreDevice& dev : devices_) nr_mappings += dev.details.mapped_blocks;
  BtreeBuilder top(w, kMappingValueSize);
  for (std::size_t i = 0; i < devices_.size(); ++i) top.add_u64(devices_[i].id, roots[i]);
  sb_.data_mapping_root = top.finish();
  BtreeBuilder details(w, kDetailsValueSize);
  for (const RestoreDevice& dev : devices_) {
    std::uint8_t v[kDetailsValueSize];
    encode_details(dev.details, v);
    details.add(dev.id, v);
  }
  sb_.device_details_root = details.finish();
  if (dsm.valid()) {
    if (w.next() != dsm_first)
      return fail(Errc::kIo, "internal error: the data space map was planned at block " +
                                 std::to_string(dsm_first) + " but starts at " +
                                 std::to_string(w.next()));
    sb_.data_sm = dsm.get();
    THINMETA_CHECK(dsm_w->finish());
    if (dsm_w->next() != dsm_first + dsm_blocks)
      return fail(Errc::kIo, "internal error: planned " + std::to_string(dsm_blocks) +
                                 " data space map blocks but wrote " +
                                 std::to_string(dsm_w->next() - dsm_first));
    w.skip(dsm_blocks);
  } else {
    sb_.data_sm = pdata::write_data_space_map(w, p.data(), nr_data);
  }
  meta.finish();
  sb_.metadata_sm = pdata::write_metadata_space_map(w, meta, p.nr_meta);
  THINMETA_CHECK(w.finish());
  if (w.next() != p.total)
    return fail(Errc::kIo, "internal error: planned " + std::to_string(p.total) +
                               " metadata blocks but wrote " + std::to_string(w.next()));
  THINMETA_CHECK(io.flush());

  sb_.flags &= kNeedsCheckFlag;  // kept, as 0.9.0 does: the pool still wants a check
  sb_.version = 2;
  sb_.held_root = 0;
  sb_.metadata_nr_blocks = p.nr_meta;
  encode_superblock(sb_, sb_block.data());
  THINMETA_CHECK(io.write(0, sb_block.data()));
  THINMETA_CHECK(io.flush());
  return RestoreStats{p.total, p.nr_meta, nr_mappings};
}

}  // namespace thinmeta::thin
