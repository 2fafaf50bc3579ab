// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/copy_plan.h"

#include "persistent-data/btree/btree_cursor.h"
#include "thin/delta.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

namespace {

// Joins steps and counts them; clips at nr_blocks.
class Joiner {
 public:
  Joiner(std::uint64_t nr_blocks, CopyPlanSink& out) : nr_(nr_blocks), out_(out) {}

  Result<> copy(std::uint64_t v, std::uint64_t d, std::uint64_t len) {
    if (v >= nr_) return {};
    return step(true, v, d, len);
  }
  Result<> unprovisioned(std::uint64_t v, std::uint64_t len) {
    if (v >= nr_ || len == 0) return {};
    return step(false, v, 0, len);
  }
  Result<> flush() {
    if (!cur_len_) return {};
    std::uint64_t len = cur_len_;
    cur_len_ = 0;
    if (cur_copy_) {
      stats_.copy_blocks += len;
      ++stats_.copy_runs;
      return out_.copy(cur_v_, cur_d_, len);
    }
    stats_.unprovisioned_blocks += len;
    ++stats_.unprovisioned_runs;
    return out_.unprovisioned(cur_v_, len);
  }
  const CopyPlanStats& stats() const { return stats_; }

 private:
  // Extends the current step when this one continues it (same kind, next virtual block, and
  // for a copy the next data block), else flushes it and starts anew. v < nr_.
  Result<> step(bool copy, std::uint64_t v, std::uint64_t d, std::uint64_t len) {
    len = std::min(len, nr_ - v);
    if (cur_len_ && cur_copy_ == copy && v == cur_v_ + cur_len_ &&
        (!copy || d == cur_d_ + cur_len_)) {
      cur_len_ += len;
      return {};
    }
    THINMETA_CHECK(flush());
    cur_copy_ = copy;
    cur_v_ = v;
    cur_d_ = d;
    cur_len_ = len;
    return {};
  }

  std::uint64_t nr_;
  CopyPlanSink& out_;
  bool cur_copy_ = false;
  std::uint64_t cur_v_ = 0, cur_d_ = 0, cur_len_ = 0;
  CopyPlanStats stats_;
};

Result<pdata::BlockAddr> device_root(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                     std::uint64_t id) {
  THINMETA_TRY(auto root, lookup_device_root(io, mapping_root, id));
  if (!root)
    return fail(Errc::kNotFound,
                "thin device " + std::to_string(id) + " not found in the metadata");
  return *root;
}

Result<> plan_full(pdata::IoEngine& io, pdata::BlockAddr root, Joiner& j, std::uint64_t nr) {
  pdata::BtreeCursor c(io, kMappingValueSize);
  c.reset(root);
  std::uint64_t next_v = 0;  // first virtual block not yet covered by a step
  for (;;) {
    THINMETA_TRY(auto leaf, c.next_leaf());
    if (!leaf) break;
    for (std::uint32_t i = 0; i < leaf->nr_entries(); ++i) {
      std::uint64_t v = leaf->key(i);
      if (v >= nr) break;
      if (v > next_v) THINMETA_CHECK(j.unprovisioned(next_v, v - next_v));
      THINMETA_CHECK(j.copy(v, unpack_block_time(leaf->value64(i)).data_block, 1));
      next_v = v + 1;
    }
    c.skip_leaf();
    if (next_v >= nr) break;
  }
  if (next_v < nr) THINMETA_CHECK(j.unprovisioned(next_v, nr - next_v));
  return {};
}

class DeltaSteps : public DiffSink {
 public:
  explicit DeltaSteps(Joiner& j) : j_(j) {}
  Result<> piece(const DiffPiece& p) override {
    switch (p.kind) {
      case DiffKind::kRightOnly:
      case DiffKind::kDifferent:
        return j_.copy(p.begin, p.right_data, p.len);
      case DiffKind::kLeftOnly:
        return j_.unprovisioned(p.begin, p.len);
      case DiffKind::kSame:
        return {};
    }
    return {};
  }
  Result<> complete() override { return {}; }

 private:
  Joiner& j_;
};

}  // namespace

Result<CopyPlanStats> plan_copy(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                std::uint64_t snap_id, std::optional<std::uint64_t> base_id,
                                std::uint64_t nr_blocks, CopyPlanSink& out) {
  Joiner j(nr_blocks, out);
  THINMETA_TRY(pdata::BlockAddr snap_root, device_root(io, mapping_root, snap_id));
  if (!base_id) {
    THINMETA_CHECK(plan_full(io, snap_root, j, nr_blocks));
  } else {
    THINMETA_TRY(pdata::BlockAddr base_root, device_root(io, mapping_root, *base_id));
    DeltaSteps steps(j);
    THINMETA_CHECK(diff_trees(io, base_root, snap_root, steps));
  }
  THINMETA_CHECK(j.flush());
  return j.stats();
}

}  // namespace thinmeta::thin
