// SPDX-License-Identifier: GPL-3.0-or-later
// A metadata snapshot held for the time of a read (FORMAT.md §9, §11; ../shared/seed/).
// acquire() reserves one (`reserve_metadata_snap`) unless the pool holds one already; then that
// one is used and never released. What was reserved is released exactly once: by release(),
// by the destructor, or, on SIGINT/SIGTERM/SIGHUP/SIGPIPE, by a signal handler that sends the
// prepared `release_metadata_snap` ioctl (async-signal-safe) and exits with status 1 (silently
// for SIGPIPE, else one line on stderr). Signals the process ignores stay ignored. A handler
// installed before (bin/cleanup.h's, removing temporary files) is called before the exit; one
// installed after ours and chaining to it (as cleanup.h's does) keeps working after the release,
// when ours passes the signal on to what was there before it.
//
// At most one hold per process at a time. Thread-safe against the signal handler: the release
// blocks those signals in the calling thread, and a handler running on another thread waits
// for it to finish before exiting.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dm/control.h"
#include "dm/table.h"
#include "persistent-data/result.h"
#include "thin/metadata.h"

namespace thinmeta::dm {

// The pool's status (a `thin-pool` target) by dm name.
Result<PoolStatus> pool_status(const Control& ctl, const std::string& pool_name);

class MetadataSnapHold {
 public:
  // `ctl` must outlive the hold (its fd is used by the signal handler).
  static Result<std::unique_ptr<MetadataSnapHold>> acquire(const Control& ctl,
                                                           const std::string& pool_name);
  MetadataSnapHold(const MetadataSnapHold&) = delete;
  MetadataSnapHold& operator=(const MetadataSnapHold&) = delete;
  ~MetadataSnapHold();  // release(), its error dropped: call release() to see it

  std::uint64_t root() const { return root_; }      // the held superblock's block
  bool reserved_here() const { return reserved_; }  // false: the pool held it already
  const std::string& pool_name() const { return pool_; }
  // Releases what acquire() reserved (nothing otherwise); idempotent.
  Result<> release();

 private:
  MetadataSnapHold(const Control& ctl, std::string pool, std::uint64_t root, bool reserved)
      : ctl_(ctl), pool_(std::move(pool)), root_(root), reserved_(reserved) {}
  const Control& ctl_;
  std::string pool_;
  std::uint64_t root_;
  bool reserved_;
};

// The held snapshot must know every device asked for (a snapshot reserved before a device was
// created predates it). `snap` is metadata opened at the held root. Error names the first
// device missing and says the snapshot predates it.
Result<> check_snapshot_has(const thin::Metadata& snap, std::span<const std::uint32_t> thin_ids);

}  // namespace thinmeta::dm
