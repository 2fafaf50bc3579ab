// SPDX-License-Identifier: GPL-3.0-or-later
// Phase 1, the superblock (FORMAT.md §4, §7.1, §9).
// Checks: checksum, magic, self block number, version 1|2, metadata block size 8, data block
//   size in [128, 2097152] and a multiple of 128, feature flags, plausible space-map roots and
//   tree roots; the held snapshot's superblock likewise (at its own block, space maps zero).
// Collects: the live and held superblocks, the metadata and data space sizes; one reference
//   each to block 0 and the held block.
// Not checked: the uuid (opaque), metadata_nr_blocks (stale after a resize, FORMAT.md D.2).
#include <algorithm>
#include <vector>

#include "persistent-data/checksum.h"
#include "persistent-data/space_map/space_map_format.h"
#include "thin/check/context.h"

namespace thinmeta::thin::check_detail {
namespace {

// Problems of a superblock-format block that leave nothing trustworthy, or nullopt.
std::vector<std::string> fundamental(const Superblock& sb, BlockAddr where) {
  std::vector<std::string> out;
  if (sb.magic != kSuperblockMagic)
    out.push_back("bad magic " + std::to_string(sb.magic) + ", expected 27022010");
  if (sb.blocknr != where)
    out.push_back("bad block number: it says it is block " + std::to_string(sb.blocknr) +
                  ", but it is block " + std::to_string(where));
  if (sb.version != 1 && sb.version != 2)
    out.push_back("unsupported metadata version " + std::to_string(sb.version));
  if (sb.metadata_block_size != pdata::kSectorsPerBlock)
    out.push_back("bad metadata block size " + std::to_string(sb.metadata_block_size) +
                  " (sectors), expected 8");
  if (sb.incompat_flags)
    out.push_back("unknown incompatible feature flags " + std::to_string(sb.incompat_flags));
  return out;
}

std::optional<Superblock> read_checked(Context& ctx, BlockAddr where, const std::string& what) {
  pdata::AlignedBuffer buf(1);
  if (where >= ctx.io.nr_blocks()) {
    ctx.fatal(what + " is corrupt", "block " + std::to_string(where) +
                                        " is beyond the end of the metadata device");
    return std::nullopt;
  }
  if (auto r = ctx.io.read(where, buf.data()); !r) {
    ctx.fatal(what + " is corrupt", r.error().what);
    return std::nullopt;
  }
  std::uint32_t wanted = pdata::block_checksum(buf.data(), pdata::BlockKind::kSuperblock);
  if (pdata::load_le32(buf.data()) != wanted) {
    bool zero = std::all_of(buf.data(), buf.data() + pdata::kBlockSize,
                            [](std::uint8_t c) { return c == 0; });
    ctx.fatal(what + " is corrupt", "bad checksum in superblock, wanted " + std::to_string(wanted));
    if (zero && where == 0)
      ctx.report.problem(Severity::kFatal,
                         "the superblock is all zeroes, as an interrupted or failed thin_restore "
                         "or thin_repair leaves it: run thin_restore or thin_repair again", "");
    return std::nullopt;
  }
  Superblock sb = decode_superblock(buf.data());
  auto bad = fundamental(sb, where);
  for (const auto& b : bad) ctx.fatal(what + " is corrupt", b);
  if (!bad.empty()) return std::nullopt;
  return sb;
}

}  // namespace

bool check_superblocks(Context& ctx) {
  auto live = read_checked(ctx, 0, "superblock");
  if (!live) return false;
  const Superblock& sb = *live;
  ctx.live = sb;
  ctx.result.live = sb;
  const std::string corrupt = "superblock is corrupt";
  bool ok = true;

  if (sb.data_block_size < kMinDataBlockSize || sb.data_block_size > kMaxDataBlockSize ||
      sb.data_block_size % kMinDataBlockSize)
    ctx.fatal(corrupt, "bad data block size " + std::to_string(sb.data_block_size) +
                           " (sectors): it must be a multiple of 128 in [128, 2097152]");
  if (sb.compat_ro_flags)
    ctx.fatal(corrupt, "unknown read-only-compatible feature flags " +
                           std::to_string(sb.compat_ro_flags) + " (the kernel will not write it)");
  if (sb.compat_flags)
    ctx.non_fatal("superblock has unknown compatible feature flags " +
                  std::to_string(sb.compat_flags));

  const pdata::SmRoot& m = sb.metadata_sm;
  // --super-block-only checks the superblock alone: its claims are judged against each other,
  // not against the device, which may be cut down to its first block (1.3.3 passes that).
  BlockAddr dev = ctx.opts.superblock_only ? std::max<BlockAddr>(m.nr_blocks, ctx.io.nr_blocks())
                                           : ctx.io.nr_blocks();
  if (m.nr_blocks == 0) {
    ctx.fatal(corrupt, "the metadata space map covers no blocks");
    return false;
  }
  // A truncated device is reported once: the roots and bitmaps beyond its end, and the trees
  // below them, are not checked (each would only repeat this).
  const bool too_short = m.nr_blocks > dev;
  if (too_short)
    ctx.fatal("metadata device is too short",
              "the metadata space map covers " + std::to_string(m.nr_blocks) +
                  " blocks, but the device has only " + std::to_string(dev));
  ctx.nr_meta = std::min<BlockAddr>({m.nr_blocks, dev, pdata::kMaxMetadataBlocks});
  ctx.reset_meta_refs();
  ctx.nr_data = sb.data_sm.nr_blocks;
  ctx.data_counts = pdata::RefCounts(ctx.nr_data);

  auto root_ok = [&](BlockAddr b, const std::string& name) {
    if (b != 0 && b < ctx.nr_meta) return true;
    if (b != 0 && too_short) return false;
    ctx.fatal(corrupt, name + " " + std::to_string(b) + " is outside the metadata device (" +
                           std::to_string(ctx.nr_meta) + " blocks)");
    return false;
  };
  if (m.nr_allocated > m.nr_blocks)
    ctx.fatal(corrupt, "the metadata space map has more blocks allocated (" +
                           std::to_string(m.nr_allocated) + ") than it covers");
  if (sb.data_sm.nr_allocated > sb.data_sm.nr_blocks)
    ctx.fatal(corrupt, "the data space map has more blocks allocated (" +
                           std::to_string(sb.data_sm.nr_allocated) + ") than it covers");
  if (sb.data_sm.nr_blocks > kMaxDataBlock + 1)
    ctx.fatal(corrupt, "the data space map covers " + std::to_string(sb.data_sm.nr_blocks) +
                           " blocks, more than a mapping can address (2^40)");
  // Claims the device cannot hold are damage, found here before anything is sized from them:
  // each bitmap is a metadata block of its own (FORMAT.md §7).
  const std::uint64_t data_bitmaps =
      sb.data_sm.nr_blocks / pdata::kEntriesPerBitmap +
      (sb.data_sm.nr_blocks % pdata::kEntriesPerBitmap != 0);
  if (data_bitmaps > ctx.nr_meta) {
    if (!too_short || data_bitmaps > std::min<BlockAddr>(m.nr_blocks, pdata::kMaxMetadataBlocks))
      ctx.fatal(corrupt, "the data space map covers " + std::to_string(sb.data_sm.nr_blocks) +
                             " blocks, whose " + std::to_string(data_bitmaps) +
                             " bitmaps cannot fit in the " + std::to_string(ctx.nr_meta) +
                             " blocks of the metadata device");
    ok = false;
  }
  if (m.nr_blocks > pdata::kMaxMetadataBlocks)
    ctx.fatal(corrupt, "the metadata space map covers " + std::to_string(m.nr_blocks) +
                           " blocks, more than one index block can describe (" +
                           std::to_string(pdata::kMaxMetadataBlocks) + ")");
  ok &= root_ok(m.bitmap_root, "metadata space map index block");
  ok &= root_ok(m.ref_count_root, "metadata space map reference count root");
  ok &= root_ok(sb.data_sm.bitmap_root, "data space map index root");
  ok &= root_ok(sb.data_sm.ref_count_root, "data space map reference count root");
  ctx.sm_roots_ok = ok;
  root_ok(sb.data_mapping_root, "mapping tree root");
  root_ok(sb.device_details_root, "device details tree root");
  ctx.ref_meta(0);

  std::uint64_t free_blocks = m.nr_blocks >= m.nr_allocated ? m.nr_blocks - m.nr_allocated : 0;
  // The held copy is another block: read when it is asked for (-m) or on the device (on a
  // truncated device, only when it lies within what is left).
  const bool read_held = sb.held_root &&
                         (!ctx.opts.superblock_only || ctx.opts.metadata_snap ||
                          sb.held_root < ctx.io.nr_blocks()) &&
                         !(too_short && sb.held_root >= dev);
  if (read_held) {
    auto held = read_checked(ctx, sb.held_root, "metadata snapshot superblock");
    if (held) {
      ctx.held = held;
      if (sb.held_root < ctx.nr_meta) ctx.ref_meta(sb.held_root);
      if (held->held_root)
        ctx.fatal("metadata snapshot superblock is corrupt",
                  "it holds another metadata snapshot (block " + std::to_string(held->held_root) +
                      ")");
      root_ok(held->data_mapping_root, "metadata snapshot mapping tree root");
      root_ok(held->device_details_root, "metadata snapshot device details tree root");
    }
  }
  if (ctx.opts.metadata_snap) {
    if (!sb.held_root) {
      ctx.fatal("No metadata snapshot found.");
      return false;
    }
    if (!ctx.held) return false;
    ctx.report.info(ctx.held->trans_id, free_blocks);  // as the established tool: the snapshot's
    return !too_short;
  }
  ctx.report.info(sb.trans_id, free_blocks);
  return !too_short;
}

}  // namespace thinmeta::thin::check_detail
