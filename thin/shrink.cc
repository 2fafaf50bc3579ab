// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/shrink.h"

#include <algorithm>
#include <bit>

namespace thinmeta::thin {
namespace {

// Marks the data blocks in use: one bit per block of the data device.
class UsedBlocks final : public MetadataSink {
 public:
  Result<> begin_superblock(const SuperblockInfo& sb) override {
    info = sb;
    bits.assign((sb.nr_data_blocks + 63) / 64, 0);
    return {};
  }
  Result<> end_superblock() override { return {}; }
  Result<> begin_device(const DeviceInfo& dev) override {
    dev_id = dev.dev_id;
    return {};
  }
  Result<> end_device() override { return {}; }
  Result<> map(const MappingRun& run) override {
    if (run.data_begin > info.nr_data_blocks || info.nr_data_blocks - run.data_begin < run.len)
      return fail(Errc::kBadFormat, "device " + std::to_string(dev_id) + " maps data block " +
                                        std::to_string(run.data_begin + run.len - 1) +
                                        ", beyond the " + std::to_string(info.nr_data_blocks) +
                                        " blocks of the data device");
    for (std::uint64_t b = run.data_begin; b < run.data_begin + run.len; ++b)
      bits[b / 64] |= std::uint64_t{1} << (b % 64);
    return {};
  }
  bool used(std::uint64_t b) const { return bits[b / 64] >> (b % 64) & 1; }
  // Used blocks in [b, e).
  std::uint64_t count(std::uint64_t b, std::uint64_t e) const {
    std::uint64_t n = 0;
    for (; b < e && b % 64; ++b) n += used(b);
    for (; b + 64 <= e; b += 64) n += static_cast<std::uint64_t>(std::popcount(bits[b / 64]));
    for (; b < e; ++b) n += used(b);
    return n;
  }

  SuperblockInfo info;
  std::vector<std::uint64_t> bits;
  std::uint64_t dev_id = 0;
};

}  // namespace

Result<ShrinkPlan> plan_shrink(const MetadataSource& source, std::uint64_t n) {
  UsedBlocks used;
  THINMETA_CHECK(source(used));
  ShrinkPlan plan;
  plan.data_block_size = used.info.data_block_size;
  plan.old_nr_blocks = used.info.nr_data_blocks;
  plan.new_nr_blocks = n;
  if (n == 0) return fail(Errc::kInvalidArgument, "the new size must be at least one data block");
  if (n > plan.old_nr_blocks)
    return fail(Errc::kInvalidArgument,
                "the data device has " + std::to_string(plan.old_nr_blocks) +
                    " blocks, fewer than --nr-blocks " + std::to_string(n) + ": nothing to shrink");
  const std::uint64_t high = used.count(n, plan.old_nr_blocks);
  const std::uint64_t free_low = n - used.count(0, n);
  if (high > free_low)
    return fail(Errc::kNoSpace, "Insufficient space: " + std::to_string(high) +
                                    " mapped data blocks at or beyond block " + std::to_string(n) +
                                    " but only " + std::to_string(free_low) + " free below it");
  // Pair the used blocks >= n with the free blocks < n, both ascending, as runs.
  std::uint64_t dst = 0;
  for (std::uint64_t src = n; src < plan.old_nr_blocks; ++src) {
    if (src % 64 == 0 && used.bits[src / 64] == 0) {
      src += 63;
      continue;
    }
    if (!used.used(src)) continue;
    while (used.used(dst)) ++dst;
    if (!plan.moves.empty()) {
      DataMove& last = plan.moves.back();
      if (last.src + last.len == src && last.dst + last.len == dst) {
        ++last.len;
        ++dst;
        ++plan.moved_blocks;
        continue;
      }
    }
    plan.moves.push_back({src, dst, 1});
    ++dst;
    ++plan.moved_blocks;
  }
  return plan;
}

Result<> ShrinkRemapper::begin_superblock(const SuperblockInfo& sb) {
  SuperblockInfo s = sb;
  s.nr_data_blocks = plan_.new_nr_blocks;
  return out_.begin_superblock(s);
}

Result<> ShrinkRemapper::map(const MappingRun& run) {
  MappingRun r = run;
  while (r.len > 0) {
    const std::uint64_t n = plan_.new_nr_blocks;
    if (r.data_begin < n) {  // the part below N stays
      MappingRun keep = r;
      keep.len = std::min(r.len, n - r.data_begin);
      THINMETA_CHECK(out_.map(keep));
      r.thin_begin += keep.len;
      r.data_begin += keep.len;
      r.len -= keep.len;
      continue;
    }
    // The move holding r.data_begin: the last with src <= data_begin.
    auto it = std::upper_bound(plan_.moves.begin(), plan_.moves.end(), r.data_begin,
                               [](std::uint64_t b, const DataMove& m) { return b < m.src; });
    if (it == plan_.moves.begin() || (it - 1)->src + (it - 1)->len <= r.data_begin)
      return fail(Errc::kBadFormat, "data block " + std::to_string(r.data_begin) +
                                        " was not seen by the first pass (input changed?)");
    const DataMove& m = *(it - 1);
    MappingRun moved = r;
    const std::uint64_t off = r.data_begin - m.src;
    moved.data_begin = m.dst + off;
    moved.len = std::min(r.len, m.len - off);
    THINMETA_CHECK(out_.map(moved));
    r.thin_begin += moved.len;
    r.data_begin += moved.len;
    r.len -= moved.len;
  }
  return {};
}

}  // namespace thinmeta::thin
