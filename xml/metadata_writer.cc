// SPDX-License-Identifier: GPL-3.0-or-later
#include "xml/metadata_writer.h"

#include <algorithm>

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
  char* p = out_.reserve(name.size() + 24);
  *p++ = ' ';
  p = std::copy(name.begin(), name.end(), p);
  p = thin::write_lit(p, "=\"");
  p = thin::write_u64(p, v);
  *p++ = '"';
  out_.commit(p);
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

// The longest mapping line: range_mapping with three 20-digit numbers and a 10-digit time
// (159 bytes).
constexpr std::size_t kMaxMapLine = 192;

Result<> MetadataWriter::map(const thin::MappingRun& r) {
  using thin::write_lit;
  using thin::write_u64;
  char* p = out_.reserve(kMaxMapLine);  // one check for the whole line
  if (r.len == 1) {
    p = write_lit(p, "    <single_mapping origin_block=\"");
    p = write_u64(p, r.thin_begin);
    p = write_lit(p, "\" data_block=\"");
    p = write_u64(p, r.data_begin);
  } else {
    p = write_lit(p, "    <range_mapping origin_begin=\"");
    p = write_u64(p, r.thin_begin);
    p = write_lit(p, "\" data_begin=\"");
    p = write_u64(p, r.data_begin);
    p = write_lit(p, "\" length=\"");
    p = write_u64(p, r.len);
  }
  p = write_lit(p, "\" time=\"");
  p = write_u64(p, r.time);
  p = write_lit(p, "\"/>\n");
  out_.commit(p);
  return out_.status();
}

}  // namespace thinmeta::xml
