// SPDX-License-Identifier: GPL-3.0-or-later
// What thin_receive last applied to each target, kept outside the target (a block device has
// no room for it, tmpfs has no user xattrs): one small text file per target in a state
// directory, written atomically (temporary file, fsync, rename, fsync of the directory).
//
// Directory: --state-dir, else $THINMETA_RECEIVE_STATE_DIR, else /var/lib/thinmeta/receive.
// Key (the file name): a device-mapper device by its dm uuid ("dm-<uuid>": lvm2 gives every LV
// one that survives reboots and renames), another block device by its device number
// ("blk-<major>:<minor>"), a regular file by file system and inode ("file-<dev>-<ino>").
// A file also records its size and modification time after the last receive, so a file
// replaced or written since (by anything else) is not taken for the state recorded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "data-plane/data_device.h"
#include "data-plane/stream_format.h"
#include "persistent-data/result.h"

namespace thinmeta::dataplane {

struct TargetState {
  std::string path;                 // the target's path at the last receive (for messages)
  std::optional<Identity> holds;    // the snapshot the target holds whole
  // An interrupted receive: what it was receiving and how far it got. While set, the target
  // holds a mix (holds is empty).
  std::optional<Identity> partial_snap;
  Identity partial_base;            // empty for a full stream
  std::uint32_t partial_flags = 0;  // kIncremental | kMappedOnly of that stream
  std::uint64_t partial_below = 0;  // every record below this offset has been applied
  // Regular files: size and mtime (ns) after the last receive; 0 when not recorded.
  std::uint64_t file_size = 0;
  std::uint64_t file_mtime_ns = 0;
};

class StateStore {
 public:
  // `dir` empty: $THINMETA_RECEIVE_STATE_DIR, else /var/lib/thinmeta/receive (created when a
  // state is first saved).
  explicit StateStore(std::string dir);
  const std::string& dir() const { return dir_; }
  // The key of the target opened as `dev`.
  static std::string key(const DataDevice& dev);
  // The state recorded for `key`; nullopt if none. A damaged state file is an error.
  Result<std::optional<TargetState>> load(const std::string& key) const;
  Result<> save(const std::string& key, const TargetState& s) const;
  Result<> remove(const std::string& key) const;

 private:
  std::string file(const std::string& key) const { return dir_ + "/" + key; }
  std::string dir_;
};

// The size and mtime (ns) of a regular file now.
Result<std::pair<std::uint64_t, std::uint64_t>> file_stamp(const std::string& path);

}  // namespace thinmeta::dataplane
