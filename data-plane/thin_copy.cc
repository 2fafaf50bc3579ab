// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/thin_copy.h"

#include <algorithm>

#include "thin/copy_plan.h"

namespace thinmeta::dataplane {

namespace {

class Executor final : public thin::CopyPlanSink, public ChunkSink {
 public:
  Executor(const DataDevice& data, DataDevice& dest, const ThinCopyOptions& o,
           const CopierOptions& half)
      : opts_(o), reads_(data, *this, half), writes_(dest, half) {}

  // Plan steps (virtual order) -> the read pipeline.
  Result<> copy(std::uint64_t v, std::uint64_t d, std::uint64_t len) override {
    auto [off, n] = clip(v, len);
    if (n == 0) return {};
    stats_.bytes_copied += n;
    return reads_.push(Extent{d * opts_.block_bytes, off, n, 0});
  }
  Result<> unprovisioned(std::uint64_t v, std::uint64_t len) override {
    auto [off, n] = clip(v, len);
    if (n == 0) return {};
    return reads_.push_marker(off, n);
  }

  // The read pipeline's output, in the same order -> the write pipeline.
  Result<> chunk(const Chunk& c) override {
    if (opts_.done_below) opts_.done_below->store(c.dst + c.len, std::memory_order_relaxed);
    if (!c.marker) return writes_.write_copy(c.dst, c.data);
    std::uint64_t off = c.dst, end = c.dst + c.len;
    if (opts_.origin) {
      const std::uint64_t oend = std::min(end, opts_.origin->size_bytes());
      while (off < oend) {
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(oend - off, opts_.copier.max_request_bytes));
        THINMETA_TRY(std::uint8_t * buf, writes_.buffer(n));
        THINMETA_CHECK(opts_.origin->read_at(off, buf, n));
        THINMETA_CHECK(writes_.write(off, n));
        stats_.bytes_from_origin += n;
        off += n;
      }
      if (off >= end) return {};
    } else if (!opts_.zero_unprovisioned) {
      return {};
    }
    stats_.bytes_zeroed += end - off;
    // With an origin the destination is not known to read zeros after a discard.
    return writes_.make_zero(off, end - off, opts_.origin ? 0 : opts_.dest_discard_block_bytes);
  }

  Result<ThinCopyStats> finish() {
    THINMETA_CHECK(reads_.finish());
    THINMETA_CHECK(writes_.finish());
    if (opts_.done_below) opts_.done_below->store(opts_.size_bytes, std::memory_order_relaxed);
    return stats_;
  }

 private:
  // Virtual blocks -> bytes, cut at the device's end (its last block may be partial).
  std::pair<std::uint64_t, std::uint64_t> clip(std::uint64_t v, std::uint64_t len) const {
    const std::uint64_t off = v * opts_.block_bytes;
    if (off >= opts_.size_bytes) return {off, 0};
    return {off, std::min(len * opts_.block_bytes, opts_.size_bytes - off)};
  }

  const ThinCopyOptions& opts_;
  ReadPipeline reads_;
  WritePipeline writes_;
  ThinCopyStats stats_;
};

}  // namespace

Result<ThinCopyStats> copy_thin(pdata::IoEngine& meta, pdata::BlockAddr mapping_root,
                                const DataDevice& data, DataDevice& dest,
                                const ThinCopyOptions& opts) {
  if (opts.block_bytes == 0) return fail(Errc::kInvalidArgument, "data block size is zero");
  if (dest.size_bytes() < opts.size_bytes)
    return fail(Errc::kInvalidArgument, "destination '" + dest.path() +
                                            "' is too small: " + std::to_string(dest.size_bytes()) +
                                            " bytes, the source has " +
                                            std::to_string(opts.size_bytes));
  // The buffers are shared between reading and writing.
  CopierOptions half = opts.copier;
  half.buffer_bytes = std::max<std::size_t>(opts.copier.buffer_bytes / 2, half.max_request_bytes);
  Executor x(data, dest, opts, half);
  const std::uint64_t nr_blocks = (opts.size_bytes + opts.block_bytes - 1) / opts.block_bytes;
  THINMETA_CHECK(thin::plan_copy(meta, mapping_root, opts.snap_id, opts.base_id, nr_blocks, x));
  return x.finish();
}

}  // namespace thinmeta::dataplane
