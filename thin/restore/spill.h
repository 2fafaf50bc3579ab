// SPDX-License-Identifier: GPL-3.0-or-later
// A metadata stream recorded on its way to a sink, in an unlinked temporary file, so that a
// second pass replays the record instead of reading the source again: thin_restore's second
// pass does not parse the XML twice, thin_repair's does not walk the damaged device twice.
// Memory stays bounded (a 1 MiB buffer); the file holds compact records (spill_codec.h): about
// 4.5 bytes per mapping run on a typical pool, at most 36 (runs far apart in both spaces).
//
// The record gives up when no temporary file can be made ($TMPDIR, else /tmp) or a write
// fails (a full file system): system_error() then says why, and the caller refuses before its
// output is opened, since reading the source again could read what the output overwrote. It
// also gives up, with no error, when the record would pass kMaxBytes (the caller reads its
// source again) or the stream uses <def>/<ref> (those inputs are restored in memory anyway).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "thin/restore/spill_codec.h"
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
  // Where the next record goes: at least spill::kMaxRecordBytes free (the frame written out
  // first when it is fuller), or nullptr when there is no record.
  char* room() {
    if (!out_) return nullptr;
    const auto free = static_cast<std::size_t>(frame_.get() + spill::kFrameBytes - end_);
    if (free >= spill::kMaxRecordBytes) return end_;
    return write_frame() ? end_ : nullptr;
  }
  // Writes the frame out (if it holds a record) and starts the next; false when the record
  // ended (a write error or kMaxBytes).
  bool write_frame();
  void give_up();
  void fail_write();

  MetadataSink& inner_;
  std::string dir_;  // where the temporary file is
  std::optional<std::string> error_;
  int fd_ = -1;
  bool done_ = false;
  SuperblockInfo sb_;  // one per stream: kept here, not in the file
  std::optional<TextOutput> out_;  // writes to fd_ (whole frames, unbuffered)
  std::unique_ptr<char[]> frame_;  // the frame being filled: header, then records up to end_
  char* end_ = nullptr;
  spill::Encoder enc_;
  std::uint64_t written_ = 0;
};

}  // namespace thinmeta::thin
