// SPDX-License-Identifier: GPL-3.0-or-later
// thin_delta's logic (FORMAT.md §14): compare two bottom-level mapping trees in key order and
// cut the result into the pieces 0.9.0 produces. Both trees are walked together with cursors;
// a subtree both trees point at is read once and reported as `same` without comparing.
#pragma once

#include <cstdint>
#include <optional>

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"

namespace thinmeta::thin {

using pdata::BlockAddr;

enum class DiffKind { kLeftOnly, kRightOnly, kDifferent, kSame };

// Virtual blocks [begin, begin + len); data blocks at `begin` on each side (only the sides
// that map it are meaningful).
struct DiffPiece {
  DiffKind kind = DiffKind::kSame;
  std::uint64_t begin = 0;
  std::uint64_t len = 0;
  std::uint64_t left_data = 0;
  std::uint64_t right_data = 0;
};

class DiffSink {
 public:
  virtual ~DiffSink() = default;
  virtual Result<> piece(const DiffPiece& p) = 0;
  virtual Result<> complete() = 0;
};

// Turns mappings given in ascending virtual order into 0.9.0's pieces: each side's mappings
// form runs (virtual and data block both advance by one; time ignored) and a piece ends
// wherever either side's run ends, the kind changes or a virtual block is unmapped on both.
// Within a piece, block begin + k is mapped to left_data + k on the left and right_data + k
// on the right (the sides its kind has), so the piece itself says what extends it.
class PieceBuilder {
 public:
  explicit PieceBuilder(DiffSink& out) : out_(out) {}
  // Virtual block `v`, mapped on the left to *l and/or on the right to *r.
  Result<> add(std::uint64_t v, std::optional<std::uint64_t> l, std::optional<std::uint64_t> r);
  // `len` blocks from v of kind k, mapped from l on the left and from r on the right (the
  // sides k has; l == r for kSame), each advancing by one: what `len` calls of add() give.
  Result<> add_run(DiffKind k, std::uint64_t v, std::uint64_t l, std::uint64_t r,
                   std::uint64_t len) {
    if (cur_.len && k == cur_.kind && v == cur_.begin + cur_.len &&
        (k == DiffKind::kRightOnly || l == cur_.left_data + cur_.len) &&
        (k == DiffKind::kLeftOnly || r == cur_.right_data + cur_.len)) {
      cur_.len += len;
      return {};
    }
    return start(DiffPiece{k, v, len, k == DiffKind::kRightOnly ? 0 : l,
                           k == DiffKind::kLeftOnly ? 0 : r});
  }
  // The same data on both sides for `len` blocks from v (one run on each side).
  Result<> add_same_run(std::uint64_t v, std::uint64_t d, std::uint64_t len) {
    return add_run(DiffKind::kSame, v, d, d, len);
  }
  Result<> finish();

 private:
  Result<> start(const DiffPiece& p);  // ends cur_ (if any) and starts p

  DiffSink& out_;
  DiffPiece cur_;  // cur_.len == 0: none
};

// Compares the bottom-level trees at `left` and `right`. Damage is an Errc::kDamage error.
Result<> diff_trees(pdata::IoEngine& io, BlockAddr left, BlockAddr right, DiffSink& out);

}  // namespace thinmeta::thin

namespace thinmeta::thin {

// The bottom-level tree root of device `dev_id` in the top-level tree at `mapping_root`, read
// with a cursor along one root-to-leaf path; nullopt if the device has no mapping tree.
Result<std::optional<BlockAddr>> lookup_device_root(pdata::IoEngine& io, BlockAddr mapping_root,
                                                    std::uint64_t dev_id);

}  // namespace thinmeta::thin
