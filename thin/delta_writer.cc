// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/delta_writer.h"

namespace thinmeta::thin {
namespace {

const char* name(DiffKind k) {
  switch (k) {
    case DiffKind::kLeftOnly: return "left_only";
    case DiffKind::kRightOnly: return "right_only";
    case DiffKind::kDifferent: return "different";
    case DiffKind::kSame: return "same";
  }
  return "";
}

}  // namespace

void DeltaWriter::begin(const SuperblockInfo& sb, const DiffSide& left, const DiffSide& right) {
  out_.put("<superblock uuid=\"");
  out_.put(sb.uuid);
  out_.put("\" time=\"");
  out_.put_u64(sb.time);
  out_.put("\" transaction=\"");
  out_.put_u64(sb.trans_id);
  out_.put("\" data_block_size=\"");
  out_.put_u64(sb.data_block_size);
  out_.put("\" nr_data_blocks=\"");
  out_.put_u64(sb.nr_data_blocks);
  if (sb.metadata_snap) {
    out_.put("\" metadata_snap=\"");
    out_.put_u64(*sb.metadata_snap);
  }
  out_.put("\">\n  <diff ");
  out_.put(left.is_root ? "left_root=\"" : "left=\"");
  out_.put_u64(left.value);
  out_.put(right.is_root ? "\" right_root=\"" : "\" right=\"");
  out_.put_u64(right.value);
  out_.put("\">\n");
}

Result<> DeltaWriter::piece(const DiffPiece& p) {
  if (!verbose_) {
    if (pending_ && pending_->kind == p.kind && pending_->begin + pending_->len == p.begin) {
      pending_->len += p.len;
      return {};
    }
    emit_simple();
    pending_ = p;
    return out_.status();
  }
  if (group_ != p.kind) {
    close_group();
    out_.put("    <");
    out_.put(name(p.kind));
    out_.put(">\n");
    group_ = p.kind;
  }
  out_.put("      <range begin=\"");
  out_.put_u64(p.begin);
  if (p.kind == DiffKind::kDifferent) {
    out_.put("\" left_data_begin=\"");
    out_.put_u64(p.left_data);
    out_.put("\" right_data_begin=\"");
    out_.put_u64(p.right_data);
  } else {
    out_.put("\" data_begin=\"");
    out_.put_u64(p.kind == DiffKind::kRightOnly ? p.right_data : p.left_data);
  }
  out_.put("\" length=\"");
  out_.put_u64(p.len);
  out_.put("\"/>\n");
  return out_.status();
}

void DeltaWriter::emit_simple() {
  if (!pending_) return;
  out_.put("    <");
  out_.put(name(pending_->kind));
  out_.put(" begin=\"");
  out_.put_u64(pending_->begin);
  out_.put("\" length=\"");
  out_.put_u64(pending_->len);
  out_.put("\"/>\n");
  pending_.reset();
}

void DeltaWriter::close_group() {
  if (!group_) return;
  out_.put("    </");
  out_.put(name(*group_));
  out_.put(">\n");
  group_.reset();
}

Result<> DeltaWriter::complete() {
  emit_simple();
  close_group();
  out_.put("  </diff>\n</superblock>\n");
  return out_.status();
}

}  // namespace thinmeta::thin
