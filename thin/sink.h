// SPDX-License-Identifier: GPL-3.0-or-later
// The stream every metadata producer emits and every format consumes:
//   begin_superblock (begin_def map* end_def)* (begin_device (map | ref)* end_device)*
//   end_superblock
// Producers: thin::dump, the XML reader, repair. Consumers: XML and human-readable writers,
// the restorer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "persistent-data/endian.h"
#include "persistent-data/result.h"
#include "thin/device_details.h"
#include "thin/run_extend.h"

namespace thinmeta::thin {

struct SuperblockInfo {
  std::string uuid;
  std::uint32_t time = 0;
  std::uint64_t trans_id = 0;
  std::uint32_t flags = 0;
  std::uint32_t version = 2;
  std::uint32_t data_block_size = 0;
  std::uint64_t nr_data_blocks = 0;
  std::optional<std::uint64_t> metadata_snap;
};

struct DeviceInfo {
  std::uint64_t dev_id = 0;
  DeviceDetails details;
};

// Virtual blocks [thin_begin, thin_begin + len) map to [data_begin, data_begin + len).
struct MappingRun {
  std::uint64_t thin_begin = 0;
  std::uint64_t data_begin = 0;
  std::uint64_t len = 0;
  std::uint32_t time = 0;
};

class MetadataSink {
 public:
  virtual ~MetadataSink() = default;
  virtual Result<> begin_superblock(const SuperblockInfo& sb) = 0;
  virtual Result<> end_superblock() = 0;
  virtual Result<> begin_device(const DeviceInfo& dev) = 0;
  virtual Result<> end_device() = 0;
  virtual Result<> map(const MappingRun& run) = 0;  // len == 1 is a single mapping

  // The 1.x shared-subtree form (FORMAT.md §12.6): begin_def map* end_def between devices
  // defines a named run of mappings; ref(name) inside a device splices it in. Consumers that
  // do not support it keep these defaults.
  virtual Result<> begin_def(std::string_view name);
  virtual Result<> end_def();
  virtual Result<> ref(std::string_view name);
};

inline Result<> MetadataSink::begin_def(std::string_view) {
  return fail(Errc::kInvalidArgument, "shared subtrees (<def>) are not supported here");
}
inline Result<> MetadataSink::end_def() {
  return fail(Errc::kInvalidArgument, "shared subtrees (<def>) are not supported here");
}
inline Result<> MetadataSink::ref(std::string_view) {
  return fail(Errc::kInvalidArgument, "shared subtrees (<ref>) are not supported here");
}

// Coalesces single mappings, given in ascending virtual order, into runs where virtual and
// data blocks both advance by one and the time is unchanged (FORMAT.md §12.3).
class RunCoalescer {
 public:
  explicit RunCoalescer(MetadataSink& out) : out_(out) {}
  Result<> add(std::uint64_t thin_block, std::uint64_t data_block, std::uint32_t time) {
    if (run_.len && thin_block == run_.thin_begin + run_.len &&
        data_block == run_.data_begin + run_.len && time == run_.time) {
      ++run_.len;
      return {};
    }
    THINMETA_CHECK(flush());
    run_ = MappingRun{thin_block, data_block, 1, time};
    return {};
  }
  // add() of each entry of a mapping-tree leaf: nr little-endian keys and packed block/time
  // values. The run in progress lives in locals through the loop (the hot loop of thin_dump).
  Result<> add_leaf(const std::uint8_t* keys, const std::uint8_t* vals, std::uint32_t nr) {
    MappingRun r = run_;
    for (std::uint32_t i = 0; i < nr; ++i) {
      if (r.len > 1) {  // a run that has continued once: most go on (singles do not)
        const std::uint32_t from = i;
        i = extend_run4(keys, vals, i, nr, r.thin_begin + r.len, r.data_begin + r.len, r.time);
        r.len += i - from;
        if (i == nr) break;
      }
      std::uint64_t k = pdata::load_le64(keys + 8 * i);
      BlockTime bt = unpack_block_time(pdata::load_le64(vals + 8 * i));
      if (r.len && k == r.thin_begin + r.len && bt.data_block == r.data_begin + r.len &&
          bt.time == r.time) {
        ++r.len;
        continue;
      }
      if (r.len) {
        run_.len = 0;
        const MappingRun done = r;  // r itself stays in registers (its address is not taken)
        THINMETA_CHECK(out_.map(done));
      }
      r = MappingRun{k, bt.data_block, 1, bt.time};
    }
    run_ = r;
    return {};
  }
  Result<> flush() {
    if (!run_.len) return {};
    MappingRun r = run_;
    run_.len = 0;
    return out_.map(r);
  }

 private:
  MetadataSink& out_;
  MappingRun run_;
};

}  // namespace thinmeta::thin
