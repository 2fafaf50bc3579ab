// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/trim.h"

#include "persistent-data/space_map/space_map_reader.h"
#include "thin/check/check.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

// Keeps the first fatal finding; thin_trim prints nothing of the check otherwise.
class FirstFatal final : public CheckReport {
 public:
  void phase(const std::string&) override {}
  void problem(Severity s, const std::string& headline, const std::string& detail) override {
    if (s == Severity::kFatal && what.empty()) what = detail.empty() ? headline : headline + ": " + detail;
  }
  void info(std::uint64_t, std::uint64_t) override {}
  std::string what;
};

class DamageToString final : public SpaceMapVisitor {
 public:
  void uses(BlockAddr) override {}
  void damage(const std::string& w) override {
    if (what.empty()) what = w;
  }
  std::string what;
};

}  // namespace

Result<TrimPlan> plan_trim(const Metadata& md) {
  IoEngine& io = md.io();
  FirstFatal report;
  CheckResult checked = check(io, CheckOptions{}, report);
  if (checked.fatal)
    return fail(Errc::kDamage, report.what.empty() ? "metadata contains errors" : report.what);
  if (!checked.space_maps_checked)
    return fail(Errc::kDamage, "the space maps could not be checked");

  const Superblock& sb = md.live();
  TrimPlan plan;
  plan.data_block_size = sb.data_block_size;
  plan.nr_data_blocks = sb.data_sm.nr_blocks;

  DamageToString dmg;
  SpaceMapReader reader(io, sb.data_sm, SpaceMapKind::kData, md.nr_metadata_blocks(), dmg);
  std::uint64_t run_begin = 0;
  bool in_run = false;
  bool all_valid = true;
  reader.for_each_bitmap([&](std::uint64_t first, std::span<const std::uint32_t> counts, bool valid) {
    all_valid = all_valid && valid;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      bool used = !valid || counts[i] != 0;  // an unreadable bitmap is never discarded
      if (!used && !in_run) {
        run_begin = first + i;
        in_run = true;
      } else if (used && in_run) {
        plan.free_ranges.emplace_back(run_begin, first + i);
        in_run = false;
      }
    }
  });
  if (!all_valid || !dmg.what.empty())
    return fail(Errc::kDamage, "data space map: " + (dmg.what.empty() ? "unreadable bitmap" : dmg.what));
  if (in_run) plan.free_ranges.emplace_back(run_begin, plan.nr_data_blocks);
  return plan;
}

}  // namespace thinmeta::thin
