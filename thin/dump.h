// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump's logic: stream the metadata (live or a held snapshot) into a MetadataSink.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "persistent-data/result.h"
#include "thin/metadata.h"
#include "thin/sink.h"

namespace thinmeta::thin {

struct DumpOptions {
  std::vector<std::uint64_t> dev_ids;  // empty: every device
  bool skip_mappings = false;
  // --transaction-id, --data-block-size, --nr-data-blocks: printed instead of the superblock's
  // fields (replaced as 0.9.0 does, with or without --repair).
  std::optional<std::uint64_t> trans_id;
  std::optional<std::uint32_t> data_block_size;
  std::optional<std::uint64_t> nr_data_blocks;
};

// Devices in ascending id order (the top level of the mapping tree), each with its details
// and its mappings coalesced into runs. Damage anywhere is an error (Errc::kDamage) naming the
// device and block; output already emitted stays emitted.
Result<> dump(const Metadata& md, const DumpOptions& opts, MetadataSink& out);

SuperblockInfo superblock_info(const Metadata& md);

}  // namespace thinmeta::thin
