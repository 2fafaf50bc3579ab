// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/trim.h"

#include "persistent-data/checksum.h"
#include "persistent-data/space_map_format.h"
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

Error damaged(const std::string& what) { return Error{Errc::kDamage, what}; }

// The data space map's bitmap blocks, by index-btree key (FORMAT.md §7.6).
Result<std::vector<BlockAddr>> data_bitmaps(IoEngine& io, const SmRoot& root) {
  std::uint64_t nr_bitmaps = (root.nr_blocks + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  std::vector<BlockAddr> bitmaps(nr_bitmaps, 0);
  std::optional<Error> err;
  MappingLeafFn leaf = [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
      if (n.key(i) >= nr_bitmaps) {
        err = damaged("data space map index names bitmap " + std::to_string(n.key(i)));
        return Flow::kStop;
      }
      bitmaps[n.key(i)] = decode_index_entry(n.value(i)).blocknr;
    }
    return Flow::kContinue;
  };
  DamageFn dmg = [&](const Damage& d) {
    err = damaged("data space map: " + d.what);
    return Flow::kStop;
  };
  LeafFnVisitor v(leaf, dmg);
  WalkOptions o;
  o.leaf_value_size = kIndexEntrySize;
  walk_btree(io, root.bitmap_root, o, v);
  if (err) return std::unexpected(*err);
  for (std::uint64_t i = 0; i < nr_bitmaps; ++i)
    if (!bitmaps[i]) return fail(Errc::kDamage, "data space map has no bitmap " + std::to_string(i));
  return bitmaps;
}

}  // namespace

Result<TrimPlan> plan_trim(const Metadata& md) {
  IoEngine& io = md.io();
  const Superblock& sb = md.sb();
  TrimPlan plan;
  plan.data_block_size = sb.data_block_size;
  plan.nr_data_blocks = sb.data_sm.nr_blocks;
  std::uint64_t nr = plan.nr_data_blocks;

  // Every mapped data block, from trees that must read without damage.
  std::vector<bool> mapped(nr, false);
  std::optional<Error> err;
  DamageFn dmg = [&](const Damage& d) {
    err = damaged(d.what);
    return Flow::kStop;
  };
  walk_details(io, md.details_root(), [](std::uint64_t, const DeviceDetails&) { return Flow::kContinue; },
               dmg);
  if (err) return std::unexpected(*err);
  auto mark = [&](BlockAddr root) {
    walk_mapping_leaves(
        io, root,
        [&](const NodeContext&, const NodeView& n) {
          for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
            std::uint64_t b = unpack_block_time(n.value64(i)).data_block;
            if (b >= nr) {
              err = damaged("mapping beyond the end of the data device (block " +
                            std::to_string(b) + ")");
              return Flow::kStop;
            }
            mapped[b] = true;
          }
          return Flow::kContinue;
        },
        dmg);
  };
  std::vector<BlockAddr> roots;
  walk_device_roots(io, md.mapping_root(), [&](std::uint64_t, BlockAddr r) {
    roots.push_back(r);
    return Flow::kContinue;
  }, dmg);
  if (sb.held_root) {
    if (auto h = read_superblock(io, sb.held_root)) {
      walk_device_roots(io, h->data_mapping_root, [&](std::uint64_t, BlockAddr r) {
        roots.push_back(r);
        return Flow::kContinue;
      }, dmg);
    } else {
      return fail(Errc::kDamage, h.error().what);
    }
  }
  for (BlockAddr r : roots) {
    if (err) break;
    mark(r);
  }
  if (err) return std::unexpected(*err);

  // Counts from the data space map: zero and unmapped is free; mapped with zero is damage.
  THINMETA_TRY(std::vector<BlockAddr> bitmaps, data_bitmaps(io, sb.data_sm));
  AlignedBuffer buf(1);
  std::uint64_t run_begin = 0;
  bool in_run = false;
  for (std::uint64_t i = 0; i < bitmaps.size(); ++i) {
    if (bitmaps[i] >= io.nr_blocks()) return fail(Errc::kDamage, "data space map bitmap beyond the end of the metadata");
    THINMETA_CHECK(io.read(bitmaps[i], buf.data()));
    if (auto bad = validate_block(buf.data(), bitmaps[i], BlockKind::kBitmap))
      return fail(Errc::kDamage, "data space map: " + *bad);
    std::uint64_t first = i * kEntriesPerBitmap;
    std::uint64_t end = std::min<std::uint64_t>(first + kEntriesPerBitmap, nr);
    for (std::uint64_t b = first; b < end; ++b) {
      bool used = bitmap_entry(buf.data(), b - first) != 0;
      if (mapped[b] && !used)
        return fail(Errc::kDamage, "data block " + std::to_string(b) +
                                       " is mapped but has a reference count of zero");
      if (!used && !in_run) run_begin = b, in_run = true;
      if (used && in_run) {
        plan.free_ranges.emplace_back(run_begin, b);
        in_run = false;
      }
    }
  }
  if (in_run) plan.free_ranges.emplace_back(run_begin, nr);
  return plan;
}

}  // namespace thinmeta::thin
