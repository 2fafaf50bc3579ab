// SPDX-License-Identifier: GPL-3.0-or-later
// Unpacking a pack file onto a metadata file or device (PACK.md §2-§5, §8, §9). Frames are
// inflated and decoded on the helper threads; every malformed thing (damaged or truncated
// zlib data, bad instructions, blocks without a known checksum, block numbers out of range or
// seen twice) is an error naming the frame and its file offset. Block 0 (the superblock) is
// zeroed first and written last, after everything else is on disk: a failed unpack never
// leaves a valid-looking superblock behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::pdata::pack {

struct PackHeader {
  std::uint64_t nr_blocks = 0;
};

// Largest nr_blocks accepted (16 TiB of metadata; the dm-thin limit is 16 GiB).
inline constexpr std::uint64_t kMaxPackBlocks = 1ull << 32;

// Reads and checks the 32-byte header of the pack at `fd`, in 1.3.3's order and wording
// (PACK.md §2); nr_blocks 0 or beyond kMaxPackBlocks is refused too.
Result<PackHeader> read_header(int fd);

struct UnpackStats {
  std::uint64_t frames = 0;
  std::uint64_t records = 0;
  std::vector<std::string> warnings;  // things 1.3.3 accepts silently (stray bytes)
};

// Zeroes blocks [begin, end) of the output; called for every run of blocks the pack does not
// cover (block 0 aside). A fresh (truncated) file passes nothing.
using ZeroRange = std::function<Result<>(BlockAddr begin, BlockAddr end)>;

// Unpacks the frames of the pack at `fd` (`file_size` bytes, header already checked) onto
// `out`, which has at least header.nr_blocks blocks.
Result<UnpackStats> unpack(int fd, std::uint64_t file_size, const PackHeader& header,
                           IoEngine& out, const ZeroRange& zero);

}  // namespace thinmeta::pdata::pack
