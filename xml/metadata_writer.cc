// SPDX-License-Identifier: GPL-3.0-or-later
#include "xml/metadata_writer.h"

namespace thinmeta::xml {

std::string escape_attr(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      default: r += c;
    }
  }
  return r;
}

void MetadataWriter::attr(std::string_view name, std::uint64_t v) {
  out_.put(' ');
  out_.put(name);
  out_.put("=\"");
  out_.put_u64(v);
  out_.put('"');
}

Result<> MetadataWriter::begin_superblock(const thin::SuperblockInfo& sb) {
  out_.put("<superblock uuid=\"");
  out_.put(escape_attr(sb.uuid));
  out_.put('"');
  attr("time", sb.time);
  attr("transaction", sb.trans_id);
  attr("flags", sb.flags);
  attr("version", sb.version);
  attr("data_block_size", sb.data_block_size);
  attr("nr_data_blocks", sb.nr_data_blocks);
  if (sb.metadata_snap) attr("metadata_snap", *sb.metadata_snap);
  out_.put(">\n");
  return out_.status();
}

Result<> MetadataWriter::end_superblock() {
  out_.put("</superblock>\n");
  return out_.status();
}

Result<> MetadataWriter::begin_device(const thin::DeviceInfo& dev) {
  out_.put("  <device");
  attr("dev_id", dev.dev_id);
  attr("mapped_blocks", dev.details.mapped_blocks);
  attr("transaction", dev.details.transaction_id);
  attr("creation_time", dev.details.creation_time);
  attr("snap_time", dev.details.snapshotted_time);
  out_.put(">\n");
  return out_.status();
}

Result<> MetadataWriter::end_device() {
  out_.put("  </device>\n");
  return out_.status();
}

Result<> MetadataWriter::map(const thin::MappingRun& r) {
  if (r.len == 1) {
    out_.put("    <single_mapping");
    attr("origin_block", r.thin_begin);
    attr("data_block", r.data_begin);
  } else {
    out_.put("    <range_mapping");
    attr("origin_begin", r.thin_begin);
    attr("data_begin", r.data_begin);
    attr("length", r.len);
  }
  attr("time", r.time);
  out_.put("/>\n");
  return out_.status();
}

}  // namespace thinmeta::xml
