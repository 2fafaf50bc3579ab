// SPDX-License-Identifier: GPL-3.0-or-later
// thin_check --auto-repair / --clear-needs-check-flag: lower leaked counts in both space maps
// in place, then rewrite the superblock last (nr_allocated, the needs_check flag).
#pragma once

#include "persistent-data/io/io_engine.h"
#include "persistent-data/result.h"
#include "thin/check/check.h"

namespace thinmeta::thin {

struct RepairOutcome {
  bool metadata_leaks = false;  // leaks were fixed
  bool data_leaks = false;
  bool cleared_flag = false;
  bool repaired_all_non_fatal = false;  // nothing non-fatal is left
};

// `res` must come from a check of the same `io` with no fatal error. Leaks are fixed only when
// the space maps were checked. The superblock is written only if something changed.
Result<> repair_leaks(pdata::IoEngine& io, const CheckResult& res, bool clear_needs_check,
                      RepairOutcome& out);

}  // namespace thinmeta::thin
