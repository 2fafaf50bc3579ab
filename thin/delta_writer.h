// SPDX-License-Identifier: GPL-3.0-or-later
// thin_delta's XML (FORMAT.md §14), byte-identical to 0.9.0: the simple form merges touching
// pieces of one kind; the verbose form lists every piece, grouped by consecutive kind.
#pragma once

#include <optional>
#include <string>

#include "thin/delta.h"
#include "thin/sink.h"
#include "thin/text_output.h"

namespace thinmeta::thin {

// One side of the comparison: a device id (`left="N"`) or a raw root (`left_root="B"`).
struct DiffSide {
  std::uint64_t value = 0;
  bool is_root = false;
};

class DeltaWriter : public DiffSink {
 public:
  DeltaWriter(TextOutput& out, bool verbose) : out_(out), verbose_(verbose) {}
  // The <superblock ...> line (no flags/version) and the <diff ...> line.
  void begin(const SuperblockInfo& sb, const DiffSide& left, const DiffSide& right);
  Result<> piece(const DiffPiece& p) override;
  Result<> complete() override;  // closes the open element, </diff> and </superblock>

 private:
  void emit_simple();
  void close_group();

  TextOutput& out_;
  bool verbose_;
  std::optional<DiffPiece> pending_;  // simple form: the range being merged
  std::optional<DiffKind> group_;     // verbose form: the open element
};

}  // namespace thinmeta::thin
