// SPDX-License-Identifier: GPL-3.0-or-later
// The order of the phases and which trees each one sees.
#include "thin/check/check.h"

#include "thin/check/context.h"

namespace thinmeta::thin {

using namespace check_detail;

namespace {

// Feeds an engine's gap blocks to a sink for as long as it lives.
class GapSinkScope {
 public:
  GapSinkScope(pdata::IoEngine& io, pdata::GapSink* sink) : io_(io), on_(sink != nullptr) {
    if (on_) io_.set_gap_sink(sink);
  }
  ~GapSinkScope() {
    if (on_) io_.set_gap_sink(nullptr);
  }
  GapSinkScope(const GapSinkScope&) = delete;
  GapSinkScope& operator=(const GapSinkScope&) = delete;

 private:
  pdata::IoEngine& io_;
  bool on_;
};

}  // namespace

CheckResult check(pdata::IoEngine& io, const CheckOptions& opts, CheckReport& report) {
  CheckResult result;
  Context ctx(io, opts, report, result);

  report.phase("examining superblock");
  if (!check_superblocks(ctx) || opts.superblock_only) return result;

  // The tree sets: the live trees (or, with -m, the held ones) and the held snapshot's trees.
  std::vector<Roots> sets;
  if (opts.metadata_snap) {
    sets.push_back({"", ctx.held->data_mapping_root, ctx.held->device_details_root,
                    ctx.held->time});
  } else {
    sets.push_back({"", ctx.live.data_mapping_root, ctx.live.device_details_root, ctx.live.time});
    if (ctx.held)
      sets.push_back({"metadata snapshot: ", ctx.held->data_mapping_root,
                      ctx.held->device_details_root, ctx.held->time});
  }
  if (opts.override_mapping_root) sets[0].mapping_root = *opts.override_mapping_root;
  if (opts.override_details_root) sets[0].details_root = *opts.override_details_root;

  std::vector<Devices> devs(sets.size());
  report.phase("examining devices tree");
  for (std::size_t i = 0; i < sets.size(); ++i) check_details(ctx, sets[i], devs[i]);

  report.phase(opts.skip_mappings ? "examining top level of mapping tree"
                                  : "examining mapping tree");
  for (std::size_t i = 0; i < sets.size(); ++i) check_top_level(ctx, sets[i], devs[i]);
  if (opts.skip_mappings) return result;
  // Space maps only make sense against the live trees as they are on disk.
  bool space_maps =
      !opts.metadata_snap && !opts.override_mapping_root && !opts.override_details_root;
  // The data space map's reference-count tree: its leaves are gathered from what the mapping
  // walk reads (persistent-data/ref_count_gather.h).
  if (space_maps && ctx.sm_roots_ok)
    ctx.data_ref_tree = std::make_unique<pdata::RefCountTreeGather>(io, ctx.live.data_sm, ctx.nr_meta);
  {
    GapSinkScope gather(io, ctx.data_ref_tree && ctx.data_ref_tree->active()
                                ? ctx.data_ref_tree.get() : nullptr);
    for (std::size_t i = 0; i < sets.size(); ++i) check_mappings(ctx, sets[i], devs[i]);
  }
  if (!space_maps) return result;
  report.phase("checking space map counts");
  check_space_maps(ctx);
  return result;
}

}  // namespace thinmeta::thin
