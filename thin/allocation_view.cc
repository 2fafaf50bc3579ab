// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/allocation_view.h"

#include <algorithm>

#include "persistent-data/checksum.h"
#include "persistent-data/space_map/space_map_format.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

std::optional<AllocationView> AllocationView::read(IoEngine& io, BlockAddr index_block,
                                                   std::uint64_t nr_blocks) {
  nr_blocks = std::min<std::uint64_t>(nr_blocks, kMaxMetadataBlocks);
  AlignedBuffer idx(1);
  if (index_block >= io.nr_blocks() || !io.read(index_block, idx.data()) ||
      validate_block(idx.data(), index_block, BlockKind::kIndex))
    return std::nullopt;
  AllocationView v;
  v.index_block_ = index_block;
  v.states_.assign(nr_blocks, kUnknown);
  std::uint64_t nr_bitmaps = (nr_blocks + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  std::vector<BlockAddr> addrs;
  for (std::uint64_t i = 0; i < nr_bitmaps; ++i) {
    IndexEntry e = decode_index_entry(idx.data() + 16 + kIndexEntrySize * i);
    if (e.blocknr == 0) break;
    addrs.push_back(e.blocknr);
  }
  AlignedBuffer bufs(std::max<std::size_t>(addrs.size(), 1));
  std::vector<int> errs(addrs.size());
  std::vector<BlockAddr> readable;
  for (BlockAddr a : addrs) readable.push_back(std::min(a, io.nr_blocks() - 1));
  io.read_many(readable, bufs.data(), errs);
  for (std::size_t i = 0; i < addrs.size(); ++i) {
    if (errs[i] || addrs[i] >= io.nr_blocks() ||
        validate_block(bufs.block(i), addrs[i], BlockKind::kBitmap))
      continue;
    std::uint64_t first = i * kEntriesPerBitmap;
    std::uint64_t end = std::min<std::uint64_t>(first + kEntriesPerBitmap, nr_blocks);
    for (std::uint64_t b = first; b < end; ++b)
      v.states_[b] = bitmap_entry(bufs.block(i), b - first) ? kAllocated : kFree;
  }
  return v;
}

}  // namespace thinmeta::thin
