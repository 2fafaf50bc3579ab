// SPDX-License-Identifier: GPL-3.0-or-later
// thin_restore's logic: a MetadataSink that collects and validates a whole pool in memory
// (devices as sorted runs of mappings, 1.x shared subtrees), then commit() writes fresh
// metadata: bulk-built trees, both space maps with exact counts, the superblock last
// (FORMAT.md §4-§8, §12.4). Nothing reaches the output before the input is fully validated.
// In streaming mode (a re-readable input) the first pass only validates and counts, and
// commit() replays the input to build the trees: memory no longer grows with the mappings.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "persistent-data/io/block_writer.h"
#include "persistent-data/btree/btree_builder.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/paged_counts.h"
#include "thin/sink.h"
#include "thin/superblock.h"

namespace thinmeta::thin {

struct RestoreOptions {
  std::optional<std::uint64_t> trans_id;
  std::optional<std::uint32_t> data_block_size;
  std::optional<std::uint64_t> nr_data_blocks;
  // The needs_check flag of the input is kept unless this is set (repair writes metadata that
  // has just been rebuilt from what could be read).
  bool clear_needs_check = false;
  // Two passes over a re-readable input (see commit_streaming). Inputs this mode cannot take
  // (<def>s, devices whose mappings are not in ascending order) stop the first pass with
  // needs_memory() set: restart with a Restorer in the default mode.
  bool streaming = false;
  // The pool time written is at least every mapping's time and every device's creation and
  // snapshot time (repair: a damaged superblock's time must not leave mappings in the future).
  bool time_covers_mappings = false;
};

// One element of a device or a <def>: a run of mappings, or a reference to a def.
struct RestoreItem {
  static constexpr std::uint32_t kRun = std::numeric_limits<std::uint32_t>::max();
  std::uint64_t begin = 0;  // virtual blocks [begin, end)
  std::uint64_t end = 0;
  std::uint64_t data = 0;   // first data block (runs)
  std::uint32_t time = 0;
  std::uint32_t def = kRun;  // else: index of the def spliced here
};

struct RestoreDevice {
  std::uint64_t id = 0;
  DeviceDetails details;
  std::vector<RestoreItem> items;  // sorted, non-overlapping after end_device
  bool sorted = true;
};

struct RestoreDef {
  std::vector<RestoreItem> runs;
  bool sorted = true;
  std::uint64_t nr_entries = 0;
  // Filled by commit(): leaf sizes of the bulk load, where each leaf starts in `runs`, how
  // many device trees link it (0: never written) and its block.
  std::vector<std::uint32_t> leaf_sizes;
  std::vector<std::pair<std::size_t, std::uint64_t>> leaf_start;  // (run index, offset in run)
  std::vector<std::uint32_t> uses;
  std::vector<pdata::BlockAddr> addrs;
};

// Blocks in each write_many batch of commit() (bench_floor --write writes the same way).
inline constexpr std::size_t kRestoreBatchBlocks = 256;

// What commit() wrote, for reports and tests.
struct RestoreStats {
  pdata::BlockAddr metadata_blocks_used = 0;
  pdata::BlockAddr metadata_nr_blocks = 0;
  std::uint64_t nr_mappings = 0;
};

class Restorer final : public MetadataSink {
 public:
  explicit Restorer(const RestoreOptions& opts = {}) : opts_(opts) {}

  Result<> begin_superblock(const SuperblockInfo& sb) override;
  Result<> end_superblock() override;
  Result<> begin_device(const DeviceInfo& dev) override;
  Result<> end_device() override;
  Result<> map(const MappingRun& run) override;
  Result<> begin_def(std::string_view name) override;
  Result<> end_def() override;
  Result<> ref(std::string_view name) override;

  // Warnings about ignored input (e.g. a metadata_snap attribute), one line each.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Plans the layout and, if it fits in min(io.nr_blocks(), 4,161,600) blocks, writes it:
  // zeroes block 0 and flushes, writes every other block in large batches, flushes, writes
  // the superblock and flushes. Fails with Errc::kNoSpace before writing anything when the
  // metadata does not fit. A failure after writing started leaves no valid superblock.
  Result<RestoreStats> commit(pdata::IoEngine& io);
  // Streaming mode: the same, building the device trees from `replay`, which must send the
  // input that the first pass saw to the given sink again.
  using Replay = std::function<Result<>(MetadataSink&)>;
  Result<RestoreStats> commit(pdata::IoEngine& io, const Replay& replay);
  bool needs_memory() const { return needs_memory_; }

  // The blocks commit() would use on a device of nr_blocks blocks (nothing is written).
  Result<pdata::BlockAddr> blocks_needed(pdata::BlockAddr nr_blocks);

 private:
  Result<> add_item(std::vector<RestoreItem>& items, bool& sorted, const RestoreItem& it);
  Result<> finish_items(std::vector<RestoreItem>& items, bool sorted, std::uint64_t& entries);
  struct Plan;
  Result<Plan> plan(pdata::BlockAddr nr_blocks);
  Result<> map_checked(const MappingRun& run);  // every check, each with its message
  Result<> stream_item(const RestoreItem& it);
  void stream_flush();
  Result<Plan> finish_plan(Plan p, pdata::BlockAddr total, std::uint64_t meta_overflow);
  Result<RestoreStats> write(pdata::IoEngine& io, const Plan& p, const Replay* replay);
  Result<std::vector<pdata::BlockAddr>> replay_devices(pdata::BlockWriter& w,
                                                       const Replay& replay);

  RestoreOptions opts_;
  Superblock sb_;
  bool in_superblock_ = false, done_ = false;
  std::vector<RestoreDevice> devices_;
  std::unordered_set<std::uint64_t> dev_ids_;
  std::vector<RestoreDef> defs_;
  std::unordered_map<std::string, std::uint32_t> def_names_;
  RestoreDevice* cur_dev_ = nullptr;
  RestoreDef* cur_def_ = nullptr;
  std::vector<std::string> warnings_;
  // Streaming mode: the current device's last (merged) run, its leaf-level count, and what
  // the first pass counted for all devices.
  bool needs_memory_ = false;
  bool has_last_ = false;
  RestoreItem last_;
  pdata::LeafLevelCounter counter_{8};
  std::uint64_t stream_entries_ = 0;
  pdata::BlockAddr stream_blocks_ = 0;
  pdata::PagedCounts stream_data_;
  std::uint32_t max_time_ = 0;  // of the mappings and devices seen
};

}  // namespace thinmeta::thin
