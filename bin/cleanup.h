// SPDX-License-Identifier: GPL-3.0-or-later
// Files to remove if the process ends early: temporary outputs (OutputFile, and the tools to
// come: thin_receive, thin_metadata_unpack, ...) are registered here while they exist, and
// SIGINT, SIGTERM, SIGHUP and SIGQUIT unlink every registered path before the process dies of
// the signal as it would have (same status, as shells and lvm2 expect); a fault in a mapped
// input (mmap_engine.h: the file truncated while read) unlinks them before its exit status 1. Normal exits and
// errors remove their files themselves (OutputFile's destructor); this covers the signals.
// A handler installed before the first registration (e.g. dm/snap_hold's) is chained: it runs
// after the unlinks. One installed later should likewise call the one it replaces.
//
// Usage: `CleanupPath guard(tmp_path);` right after creating the file; `guard.release()` once it
// has been renamed into place (or let the destructor unregister it after unlinking it).
// Thread-safe; the signal handler only calls async-signal-safe functions (unlink, signal,
// raise). At most kMaxPaths paths at once; register() fails beyond that (callers then refuse
// to create the file).
#pragma once

#include <signal.h>

#include <string>

namespace thinmeta::cli {

inline constexpr int kMaxCleanupPaths = 16;

// Installs the handlers (idempotent; called by the first registration).
void install_cleanup_handlers();

// Registers `path` for removal on a fatal signal; returns a slot, or -1 when all are taken.
int register_cleanup(const std::string& path);
// Forgets a slot (the file was renamed or removed). -1 is ignored.
void unregister_cleanup(int slot);

// Holds SIGINT, SIGTERM, SIGHUP and SIGQUIT back in the calling thread while it lives (one
// pending signal is delivered at its end): a file created and registered inside it cannot be
// left behind by a signal that lands between its creation and its registration.
class CleanupSignalsHeld {
 public:
  CleanupSignalsHeld();
  ~CleanupSignalsHeld();
  CleanupSignalsHeld(const CleanupSignalsHeld&) = delete;
  CleanupSignalsHeld& operator=(const CleanupSignalsHeld&) = delete;

 private:
  sigset_t old_;  // the thread's mask before
};

// RAII form of the two calls above.
class CleanupPath {
 public:
  explicit CleanupPath(const std::string& path) : slot_(register_cleanup(path)) {}
  ~CleanupPath() { unregister_cleanup(slot_); }
  CleanupPath(CleanupPath&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
  CleanupPath& operator=(CleanupPath&&) = delete;
  bool ok() const { return slot_ >= 0; }
  void release() {
    unregister_cleanup(slot_);
    slot_ = -1;
  }

 private:
  int slot_;
};

}  // namespace thinmeta::cli
