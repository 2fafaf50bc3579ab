// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/check/repair_leaks.h"

#include "persistent-data/space_map/space_map_fixer.h"

namespace thinmeta::thin {
namespace {

class Strict final : public pdata::SpaceMapVisitor {
 public:
  void uses(BlockAddr) override {}
  void damage(const std::string& what) override {
    if (!err) err = what;
  }
  std::optional<std::string> err;
};

// Fixes one map; returns whether its root changed.
Result<bool> fix_map(pdata::IoEngine& io, pdata::SmRoot& root, pdata::SpaceMapKind kind,
                     BlockAddr nr_meta, const std::vector<Leak>& leaks,
                     std::uint64_t allocated_on_disk) {
  std::uint64_t freed = 0;
  if (!leaks.empty()) {
    Strict v;
    pdata::SpaceMapReader reader(io, root, kind, nr_meta, v);
    if (v.err) return fail(Errc::kDamage, "cannot repair: " + *v.err);
    std::vector<pdata::CountFix> fixes;
    fixes.reserve(leaks.size());
    for (const Leak& l : leaks) fixes.push_back({l.block, l.expected});
    THINMETA_TRY(freed, pdata::fix_counts(io, reader, root, fixes));
  }
  std::uint64_t allocated = allocated_on_disk - freed;
  bool changed = root.nr_allocated != allocated;
  root.nr_allocated = allocated;
  return changed || !leaks.empty();
}

}  // namespace

Result<> repair_leaks(pdata::IoEngine& io, const CheckResult& res, bool clear_needs_check,
                      RepairOutcome& out) {
  Superblock sb = *res.live;
  bool write = false;
  if (res.space_maps_checked) {
    BlockAddr nr_meta = std::min<BlockAddr>(sb.metadata_sm.nr_blocks, io.nr_blocks());
    THINMETA_TRY(bool m, fix_map(io, sb.metadata_sm, pdata::SpaceMapKind::kMetadata, nr_meta,
                                 res.metadata_leaks, res.metadata_nr_allocated));
    THINMETA_TRY(bool d, fix_map(io, sb.data_sm, pdata::SpaceMapKind::kData, nr_meta,
                                 res.data_leaks, res.data_nr_allocated));
    out.metadata_leaks = !res.metadata_leaks.empty();
    out.data_leaks = !res.data_leaks.empty();
    write = m || d;
  }
  if (clear_needs_check && sb.needs_check()) {
    sb.flags &= ~kNeedsCheckFlag;
    out.cleared_flag = true;
    write = true;
  }
  // Nothing non-fatal is left once the space maps are consistent (leaks and nr_allocated were
  // their only non-fatal findings); unknown compat flags remain.
  out.repaired_all_non_fatal = (res.space_maps_checked || !res.non_fatal) && !sb.compat_flags;
  if (!write) return {};
  pdata::AlignedBuffer buf(1);
  encode_superblock(sb, buf.data());
  THINMETA_CHECK(io.write(0, buf.data()));  // the commit point, after the space maps are flushed
  return io.flush();
}

}  // namespace thinmeta::thin
