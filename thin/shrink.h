// SPDX-License-Identifier: GPL-3.0-or-later
// thin_shrink's logic: move the data blocks at or beyond a new, smaller data device size N
// into free blocks below N. A first pass over the metadata marks the data blocks in use (one
// bit per data block); the plan pairs the used blocks >= N, ascending, with the free blocks
// < N, ascending, as runs. A second pass (ShrinkRemapper) rewrites every mapping through the
// plan, so every mapping of a shared block goes to the same new block. Copying the data is
// the caller's job (the plan's moves, before the new metadata is written).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "persistent-data/result.h"
#include "thin/sink.h"

namespace thinmeta::thin {

// Sends the whole metadata stream to the sink; called once per pass.
using MetadataSource = std::function<Result<>(MetadataSink&)>;

// Data blocks [src, src + len) move to [dst, dst + len); dst + len <= N <= src.
struct DataMove {
  std::uint64_t src = 0;
  std::uint64_t dst = 0;
  std::uint64_t len = 0;
};

struct ShrinkPlan {
  std::uint32_t data_block_size = 0;  // sectors
  std::uint64_t old_nr_blocks = 0;
  std::uint64_t new_nr_blocks = 0;
  std::uint64_t moved_blocks = 0;
  std::vector<DataMove> moves;  // ascending src (and dst)
};

// Reads the source once. Fails (Errc::kNoSpace) when the used blocks >= N outnumber the free
// blocks < N, and on N == 0, N greater than the current size, or mappings beyond the device.
Result<ShrinkPlan> plan_shrink(const MetadataSource& source, std::uint64_t new_nr_blocks);

// Forwards the stream with every data block remapped through the plan and the data device
// size set to N. `plan` and `out` must outlive it.
class ShrinkRemapper final : public MetadataSink {
 public:
  ShrinkRemapper(const ShrinkPlan& plan, MetadataSink& out) : plan_(plan), out_(out) {}
  Result<> begin_superblock(const SuperblockInfo& sb) override;
  Result<> end_superblock() override { return out_.end_superblock(); }
  Result<> begin_device(const DeviceInfo& dev) override { return out_.begin_device(dev); }
  Result<> end_device() override { return out_.end_device(); }
  Result<> map(const MappingRun& run) override;

 private:
  const ShrinkPlan& plan_;
  MetadataSink& out_;
};

}  // namespace thinmeta::thin
