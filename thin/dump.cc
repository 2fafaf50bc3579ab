// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/dump.h"

#include <algorithm>
#include <map>

#include "thin/mapping_tree.h"

namespace thinmeta::thin {

namespace {

Error damage_error(const std::string& where, const Damage& d) {
  return Error{Errc::kDamage, "metadata contains errors (run thin_check for details): " + where +
                                  d.what};
}

}  // namespace

SuperblockInfo superblock_info(const Metadata& md) {
  const Superblock& sb = md.sb();
  SuperblockInfo info;
  info.time = sb.time;
  info.trans_id = sb.trans_id;
  info.flags = sb.flags;
  info.version = sb.version;
  info.data_block_size = sb.data_block_size;
  info.nr_data_blocks = md.nr_data_blocks();
  return info;
}

Result<> dump(const Metadata& md, const DumpOptions& opts, MetadataSink& out) {
  pdata::IoEngine& io = md.io();
  std::optional<Error> err;

  // Device details: one entry per device, so this map grows with devices, not mappings.
  std::map<std::uint64_t, DeviceDetails> details;
  walk_details(
      io, md.details_root(),
      [&](std::uint64_t id, const DeviceDetails& d) {
        details.emplace(id, d);
        return Flow::kContinue;
      },
      [&](const Damage& d) {
        err = damage_error("device details tree: ", d);
        return Flow::kStop;
      });
  if (err) return std::unexpected(*err);

  SuperblockInfo info = superblock_info(md);
  if (opts.trans_id) info.trans_id = *opts.trans_id;
  if (opts.data_block_size) info.data_block_size = *opts.data_block_size;
  if (opts.nr_data_blocks) info.nr_data_blocks = *opts.nr_data_blocks;
  THINMETA_CHECK(out.begin_superblock(info));

  auto selected = [&](std::uint64_t id) {
    return opts.dev_ids.empty() ||
           std::find(opts.dev_ids.begin(), opts.dev_ids.end(), id) != opts.dev_ids.end();
  };

  RunCoalescer runs(out);
  walk_device_roots(
      io, md.mapping_root(),
      [&](std::uint64_t id, BlockAddr subtree) {
        if (!selected(id)) return Flow::kContinue;
        auto it = details.find(id);
        if (it == details.end()) {
          err = Error{Errc::kDamage, "mappings present for device " + std::to_string(id) +
                                         ", but it isn't present in device tree"};
          return Flow::kStop;
        }
        if (auto r = out.begin_device(DeviceInfo{id, it->second}); !r) {
          err = r.error();
          return Flow::kStop;
        }
        if (!opts.skip_mappings) {
          Flow f = walk_mapping_leaves(
              io, subtree,
              [&](const pdata::NodeContext&, const pdata::NodeView& n) {
                // The entry arrays located once a leaf (the walker checked its shape).
                if (auto r = runs.add_leaf(n.raw() + pdata::kNodeHeaderSize, n.value(0),
                                           n.nr_entries());
                    !r) {
                  err = r.error();
                  return Flow::kStop;
                }
                return Flow::kContinue;
              },
              [&](const Damage& d) {
                err = damage_error("thin device " + std::to_string(id) + ": ", d);
                return Flow::kStop;
              });
          if (f == Flow::kStop) return Flow::kStop;
          if (auto r = runs.flush(); !r) {
            err = r.error();
            return Flow::kStop;
          }
        }
        if (auto r = out.end_device(); !r) {
          err = r.error();
          return Flow::kStop;
        }
        return Flow::kContinue;
      },
      [&](const Damage& d) {
        err = damage_error("top level of the mapping tree: ", d);
        return Flow::kStop;
      });
  if (err) return std::unexpected(*err);
  return out.end_superblock();
}

}  // namespace thinmeta::thin
