// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/pack/pack_writer.h"

#include <zlib.h>

#include <cstring>
#include <deque>
#include <vector>

#include "persistent-data/endian.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/pack/block_program.h"
#include "persistent-data/pack/pack_format.h"

namespace thinmeta::pdata::pack {
namespace {

constexpr std::size_t kReadBatch = 1024;  // blocks per read_many (4 MiB)
constexpr std::size_t kMaxPending = 4;    // frames being compressed at once

// One frame: le64 compressed length, then the zlib stream of `raw`.
Result<std::vector<std::uint8_t>> compress_frame(const std::vector<std::uint8_t>& raw, int level) {
  uLongf len = compressBound(static_cast<uLong>(raw.size()));
  std::vector<std::uint8_t> frame(kFrameHeaderBytes + len);
  if (compress2(frame.data() + kFrameHeaderBytes, &len, raw.data(),
                static_cast<uLong>(raw.size()), level) != Z_OK)
    return fail(Errc::kIo, "zlib could not compress a frame (out of memory?)");
  store_le64(frame.data(), len);
  frame.resize(kFrameHeaderBytes + len);
  return frame;
}

}  // namespace

Result<PackStats> write_pack(IoEngine& in, const PackOutput& out, int zlib_level) {
  PackStats stats;
  stats.nr_blocks = in.nr_blocks();
  std::uint8_t header[kHeaderBytes];
  encode_header(stats.nr_blocks, header);
  THINMETA_CHECK(out(header, sizeof header));
  stats.bytes = sizeof header;

  std::deque<Pending<Result<std::vector<std::uint8_t>>>> pending;
  unsigned lane = 0;
  auto write_oldest = [&]() -> Result<> {
    auto frame = pending.front().get();
    pending.pop_front();
    if (!frame) return std::unexpected(frame.error());
    THINMETA_CHECK(out(frame->data(), frame->size()));
    stats.bytes += frame->size();
    ++stats.frames;
    return {};
  };
  std::vector<std::uint8_t> raw;
  std::size_t records = 0;
  auto submit = [&]() -> Result<> {
    if (pending.size() >= kMaxPending) THINMETA_CHECK(write_oldest());
    pending.push_back(on_helper(
        [r = std::move(raw), zlib_level] { return compress_frame(r, zlib_level); }, lane));
    lane = (lane + 1) % kHelperLanes;
    raw = {};
    records = 0;
    return {};
  };

  AlignedBuffer buf(kReadBatch);
  std::vector<BlockAddr> addrs;
  std::vector<int> errs;
  for (BlockAddr b = 0; b < stats.nr_blocks; b += kReadBatch) {
    std::size_t n = static_cast<std::size_t>(std::min<BlockAddr>(kReadBatch, stats.nr_blocks - b));
    addrs.resize(n);
    errs.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) addrs[i] = b + i;
    in.read_many(addrs, buf.data(), errs);
    for (std::size_t i = 0; i < n; ++i) {
      if (errs[i] != 0)
        return fail(Errc::kIo, "Couldn't read block " + std::to_string(b + i) + ": " +
                                   std::strerror(errs[i]));
      const std::uint8_t* block = buf.block(i);
      auto kind = packed_kind(block);
      if (!kind) continue;
      std::uint8_t nr[8];
      store_le64(nr, b + i);
      raw.insert(raw.end(), nr, nr + 8);
      encode_block(block, *kind, raw);
      ++stats.packed;
      if (++records == kRecordsPerFrame) THINMETA_CHECK(submit());
    }
  }
  if (records > 0) THINMETA_CHECK(submit());
  while (!pending.empty()) THINMETA_CHECK(write_oldest());
  return stats;
}

}  // namespace thinmeta::pdata::pack
