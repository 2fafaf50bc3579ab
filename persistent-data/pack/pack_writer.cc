// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/pack/pack_writer.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include "persistent-data/endian.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/pack/block_program.h"
#include "persistent-data/pack/pack_format.h"

namespace thinmeta::pdata::pack {
namespace {

constexpr std::size_t kReadBatch = kRecordsPerFrame;  // blocks per read (4 MiB), one frame
constexpr std::size_t kMaxPending = 4;                  // batches being packed at once

struct Frame {
  std::vector<std::uint8_t> bytes;  // le64 length + zlib stream; empty: no record
  std::uint64_t records = 0;
  AlignedBuffer buf;                // the batch's buffer, handed back for the next batch
};

// One batch of blocks -> one frame of the blocks with a known checksum.
Result<Frame> pack_batch(AlignedBuffer buf, BlockAddr first, std::size_t n, int level) {
  Frame f;
  std::vector<std::uint8_t> raw;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* block = buf.block(i);
    auto kind = packed_kind(block);
    if (!kind) continue;
    std::uint8_t nr[8];
    store_le64(nr, first + i);
    raw.insert(raw.end(), nr, nr + 8);
    encode_block(block, *kind, raw);
    ++f.records;
  }
  f.buf = std::move(buf);
  if (f.records == 0) return f;
  uLongf len = compressBound(static_cast<uLong>(raw.size()));
  f.bytes.resize(kFrameHeaderBytes + len);
  if (compress2(f.bytes.data() + kFrameHeaderBytes, &len, raw.data(),
                static_cast<uLong>(raw.size()), level) != Z_OK)
    return fail(Errc::kIo, "zlib could not compress a frame (out of memory?)");
  store_le64(f.bytes.data(), len);
  f.bytes.resize(kFrameHeaderBytes + len);
  return f;
}

}  // namespace

Result<PackStats> write_pack(IoEngine& in, const PackOutput& out,
                             const std::vector<Extent>& extents, int zlib_level) {
  PackStats stats;
  stats.nr_blocks = in.nr_blocks();
  std::uint8_t header[kHeaderBytes];
  encode_header(stats.nr_blocks, header);
  THINMETA_CHECK(out(header, sizeof header));
  stats.bytes = sizeof header;

  std::deque<Pending<Result<Frame>>> pending;
  std::vector<AlignedBuffer> spare;  // buffers of packed batches, reused
  auto write_oldest = [&]() -> Result<> {
    auto frame = pending.front().get();
    pending.pop_front();
    if (!frame) return std::unexpected(frame.error());
    spare.push_back(std::move(frame->buf));
    if (frame->records == 0) return {};
    THINMETA_CHECK(out(frame->bytes.data(), frame->bytes.size()));
    stats.bytes += frame->bytes.size();
    stats.packed += frame->records;
    ++stats.frames;
    return {};
  };

  std::vector<Extent> all = extents;
  if (all.empty()) all.push_back({0, stats.nr_blocks});
  std::vector<BlockAddr> addrs;
  std::vector<int> errs;
  unsigned lane = 0;
  for (const Extent& e : all) {
    for (BlockAddr b = e.begin; b < std::min(e.end, stats.nr_blocks); b += kReadBatch) {
      std::size_t n = static_cast<std::size_t>(
          std::min<BlockAddr>(kReadBatch, std::min(e.end, stats.nr_blocks) - b));
      if (pending.size() >= kMaxPending) THINMETA_CHECK(write_oldest());
      AlignedBuffer buf;
      if (!spare.empty()) {
        buf = std::move(spare.back());
        spare.pop_back();
      }
      buf.resize(kReadBatch);
      addrs.resize(n);
      errs.assign(n, 0);
      for (std::size_t i = 0; i < n; ++i) addrs[i] = b + i;
      in.read_many(addrs, buf.data(), errs);
      for (std::size_t i = 0; i < n; ++i)
        if (errs[i] != 0)
          return fail(Errc::kIo, "Couldn't read block " + std::to_string(b + i) + ": " +
                                     std::strerror(errs[i]));
      pending.push_back(on_helper(
          [buf = std::move(buf), b, n, zlib_level]() mutable {
            return pack_batch(std::move(buf), b, n, zlib_level);
          },
          lane));
      lane = (lane + 1) % kHelperLanes;
    }
  }
  while (!pending.empty()) THINMETA_CHECK(write_oldest());
  return stats;
}

}  // namespace thinmeta::pdata::pack
