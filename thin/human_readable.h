// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump -f human_readable (FORMAT.md §13), byte-identical to 0.9.0.
#pragma once

#include "thin/sink.h"
#include "thin/text_output.h"

namespace thinmeta::thin {

class HumanReadableWriter final : public MetadataSink {
 public:
  explicit HumanReadableWriter(TextOutput& out) : out_(out) {}
  Result<> begin_superblock(const SuperblockInfo& sb) override;
  Result<> end_superblock() override;
  Result<> begin_device(const DeviceInfo& dev) override;
  Result<> end_device() override;
  Result<> map(const MappingRun& run) override;

 private:
  Result<> status() const;
  TextOutput& out_;
};

}  // namespace thinmeta::thin
