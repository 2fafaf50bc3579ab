// SPDX-License-Identifier: GPL-3.0-or-later
// bench/floor: the I/O floor of an image. Reads every metadata block the metadata space map
// marks as used, once, with O_DIRECT through the libaio engine, and checksums each one. Every
// tool's time is shown against this in the benchmark table.
#include <chrono>
#include <cstdio>
#include <vector>

#include "persistent-data/checksum.h"
#include "persistent-data/crc32c.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/space_map_format.h"
#include "thin/superblock.h"

using namespace thinmeta;
using namespace thinmeta::pdata;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: floor <metadata image>\n");
    return 1;
  }
  OpenOptions oo;
  oo.engine = EngineKind::kAio;  // O_DIRECT: what a cold read of the device costs
  auto io = open_engine(argv[1], oo);
  if (!io) {
    std::fprintf(stderr, "%s\n", io.error().what.c_str());
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto sb = thin::read_superblock(**io, 0);
  if (!sb) {
    std::fprintf(stderr, "%s\n", sb.error().what.c_str());
    return 1;
  }
  AlignedBuffer index(1);
  if (!(*io)->read(sb->metadata_sm.bitmap_root, index.data())) return 1;
  std::uint64_t nr = sb->metadata_sm.nr_blocks;
  std::uint64_t nr_bitmaps = (nr + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  std::vector<BlockAddr> used;
  AlignedBuffer bm(1);
  for (std::uint64_t i = 0; i < nr_bitmaps; ++i) {
    IndexEntry e = decode_index_entry(index.data() + 16 + i * kIndexEntrySize);
    if (!(*io)->read(e.blocknr, bm.data())) return 1;
    for (std::uint64_t k = 0; k < kEntriesPerBitmap && i * kEntriesPerBitmap + k < nr; ++k)
      if (bitmap_entry(bm.data(), k)) used.push_back(i * kEntriesPerBitmap + k);
  }
  constexpr std::size_t kBatch = 1024;
  AlignedBuffer buf(kBatch);
  std::vector<int> errs(kBatch);
  std::uint32_t x = 0;
  for (std::size_t i = 0; i < used.size(); i += kBatch) {
    std::size_t n = std::min(kBatch, used.size() - i);
    (*io)->read_many(std::span<const BlockAddr>(used.data() + i, n), buf.data(),
                     std::span<int>(errs.data(), n));
    for (std::size_t k = 0; k < n; ++k) x ^= crc32c_update(~0u, buf.block(k) + 4, kBlockSize - 4);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%zu %.4f %08x\n", used.size(), secs, x);
  return 0;
}
