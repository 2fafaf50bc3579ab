// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/human_readable.h"

namespace thinmeta::thin {

Result<> HumanReadableWriter::status() const { return out_.status(); }

Result<> HumanReadableWriter::begin_superblock(const SuperblockInfo& sb) {
  out_.put("begin superblock: \"");
  out_.put(sb.uuid);
  out_.put("\", ");
  out_.put_u64(sb.time);
  out_.put(", ");
  out_.put_u64(sb.trans_id);
  out_.put(", ");
  out_.put_u64(sb.flags);
  out_.put(", ");
  out_.put_u64(sb.version);
  out_.put(", ");
  out_.put_u64(sb.data_block_size);
  out_.put(", ");
  out_.put_u64(sb.nr_data_blocks);
  if (sb.metadata_snap) {
    out_.put(", ");
    out_.put_u64(*sb.metadata_snap);
  }
  out_.put('\n');
  return status();
}

Result<> HumanReadableWriter::end_superblock() {
  out_.put("end superblock\n");
  return status();
}

Result<> HumanReadableWriter::begin_device(const DeviceInfo& dev) {
  out_.put("device: ");
  out_.put_u64(dev.dev_id);
  out_.put("\nmapped_blocks: ");
  out_.put_u64(dev.details.mapped_blocks);
  out_.put("\ntransaction: ");
  out_.put_u64(dev.details.transaction_id);
  out_.put("\ncreation time: ");
  out_.put_u64(dev.details.creation_time);
  out_.put("\nsnap time: ");
  out_.put_u64(dev.details.snapshotted_time);
  out_.put('\n');
  return status();
}

Result<> HumanReadableWriter::end_device() {
  out_.put('\n');
  return status();
}

Result<> HumanReadableWriter::map(const MappingRun& r) {
  if (r.len == 1) {
    out_.put("    ");
    out_.put_u64(r.thin_begin);
    out_.put(" -> ");
    out_.put_u64(r.data_begin);
  } else {
    out_.put("    (");
    out_.put_u64(r.thin_begin);
    out_.put("..");
    out_.put_u64(r.thin_begin + r.len - 1);
    out_.put(") -> (");
    out_.put_u64(r.data_begin);
    out_.put("..");
    out_.put_u64(r.data_begin + r.len - 1);
    out_.put(')');
  }
  out_.put(", ");
  out_.put_u64(r.time);
  out_.put('\n');
  return status();
}

}  // namespace thinmeta::thin
