// SPDX-License-Identifier: GPL-3.0-or-later
// A metadata stream recorded on its way to a sink, in an unlinked temporary file, so that a
// second pass replays the record instead of reading the source again: thin_restore's second
// pass does not parse the XML twice, thin_repair's does not walk the damaged device twice.
// Memory stays bounded (a 1 MiB buffer); the file holds about 33 bytes per mapping run.
//
// The record gives up when no temporary file can be made ($TMPDIR, else /tmp) or a write
// fails (a full file system): system_error() then says why, and the caller refuses before its
// output is opened, since reading the source again could read what the output overwrote. It
// also gives up, with no error, when the record would pass kMaxBytes (the caller reads its
// source again) or the stream uses <def>/<ref> (those inputs are restored in memory anyway).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "thin/sink.h"
#include "thin/text_output.h"

namespace thinmeta::thin {

class SpillSink final : public MetadataSink {
 public:
  static constexpr std::uint64_t kMaxBytes = 4ull << 30;

  // Every event goes to `inner` first; an error of inner is returned (and ends the record).
  explicit SpillSink(MetadataSink& inner);
  ~SpillSink() override;
  SpillSink(const SpillSink&) = delete;
  SpillSink& operator=(const SpillSink&) = delete;

  Result<> begin_superblock(const SuperblockInfo& sb) override;
  Result<> end_superblock() override;
  Result<> begin_device(const DeviceInfo& dev) override;
  Result<> end_device() override;
  Result<> map(const MappingRun& run) override;
  Result<> begin_def(std::string_view name) override;
  Result<> end_def() override;
  Result<> ref(std::string_view name) override;

  // The whole stream (up to end_superblock) is recorded and can be replayed.
  bool complete() const { return fd_ >= 0 && done_; }
  // Sends the recorded stream to `out`, event for event as the first pass saw it.
  Result<> replay(MetadataSink& out);
  // Why the file system failed the record (no temporary file, a failed write), in one line
  // that names the directory; nullopt while recording, when complete, and when the record
  // gave up for its size or for <def>/<ref>.
  const std::optional<std::string>& system_error() const { return error_; }
  // Whether a second pass may go ahead after the first pass through `spill` (null: there was
  // none): an error, in one line that says what to do, when the file system failed the record.
  static Result<> check(const SpillSink* spill);

 private:
  void put(char kind, const void* payload, std::size_t len);
  void give_up();
  void fail_write();


  MetadataSink& inner_;
  std::string dir_;  // where the temporary file is
  std::optional<std::string> error_;
  int fd_ = -1;
  bool done_ = false;
  SuperblockInfo sb_;  // one per stream: kept here, not in the file
  std::optional<TextOutput> out_;  // buffered writes to fd_
  std::uint64_t written_ = 0;
};

}  // namespace thinmeta::thin
