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

// Writes "    <NAME begin=\"" for kind k at p, returns the end.
char* write_open(char* p, DiffKind k) {
  switch (k) {
    case DiffKind::kLeftOnly: return write_lit(p, "    <left_only begin=\"");
    case DiffKind::kRightOnly: return write_lit(p, "    <right_only begin=\"");
    case DiffKind::kDifferent: return write_lit(p, "    <different begin=\"");
    case DiffKind::kSame: return write_lit(p, "    <same begin=\"");
  }
  return p;
}

// The longest line formatted in one reserve(): a verbose range with three 20-digit numbers.
constexpr std::size_t kMaxLine = 128;

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

Result<> DeltaWriter::piece(const DiffPiece& pc) {
  if (!verbose_) {
    if (pending_ && pending_->kind == pc.kind && pending_->begin + pending_->len == pc.begin) {
      pending_->len += pc.len;
      return {};
    }
    emit_simple();
    pending_ = pc;
    return out_.status();
  }
  if (group_ != pc.kind) {
    close_group();
    out_.put("    <");
    out_.put(name(pc.kind));
    out_.put(">\n");
    group_ = pc.kind;
  }
  char* p = write_lit(out_.reserve(kMaxLine), "      <range begin=\"");
  p = write_u64(p, pc.begin);
  if (pc.kind == DiffKind::kDifferent) {
    p = write_lit(p, "\" left_data_begin=\"");
    p = write_u64(p, pc.left_data);
    p = write_lit(p, "\" right_data_begin=\"");
    p = write_u64(p, pc.right_data);
  } else {
    p = write_lit(p, "\" data_begin=\"");
    p = write_u64(p, pc.kind == DiffKind::kRightOnly ? pc.right_data : pc.left_data);
  }
  p = write_lit(p, "\" length=\"");
  p = write_u64(p, pc.len);
  out_.commit(write_lit(p, "\"/>\n"));
  return out_.status();
}

void DeltaWriter::emit_simple() {
  if (!pending_) return;
  char* p = write_open(out_.reserve(kMaxLine), pending_->kind);
  p = write_u64(p, pending_->begin);
  p = write_lit(p, "\" length=\"");
  p = write_u64(p, pending_->len);
  out_.commit(write_lit(p, "\"/>\n"));
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
