// SPDX-License-Identifier: GPL-3.0-or-later
// A metadata stream recorded on its way to a sink, in an unlinked temporary file, so that a
// second pass replays the record instead of reading the source again: thin_restore's second
// pass does not parse the XML twice, thin_repair's does not walk the damaged device twice.
// Memory stays bounded (a 1 MiB buffer); the file holds about 33 bytes per mapping run.
//
// The record is an optimisation only. It gives up, and the caller reads its source again as
// before, when no temporary file can be made ($TMPDIR, else /tmp), a write fails (a full file
// system), the record would pass kMaxBytes, or the stream uses <def>/<ref> (those inputs are
// restored in memory anyway).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

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

 private:
  void put(char kind, const void* payload, std::size_t len);
  void give_up();

  MetadataSink& inner_;
  int fd_ = -1;
  bool done_ = false;
  SuperblockInfo sb_;  // one per stream: kept here, not in the file
  std::optional<TextOutput> out_;  // buffered writes to fd_
  std::uint64_t written_ = 0;
};

}  // namespace thinmeta::thin
