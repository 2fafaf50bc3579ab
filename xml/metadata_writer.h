// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump's XML (FORMAT.md §12.3), byte-identical to 0.9.0.
#pragma once

#include "thin/sink.h"
#include "thin/text_output.h"

namespace thinmeta::xml {

class MetadataWriter final : public thin::MetadataSink {
 public:
  explicit MetadataWriter(thin::TextOutput& out) : out_(out) {}
  Result<> begin_superblock(const thin::SuperblockInfo& sb) override;
  Result<> end_superblock() override;
  Result<> begin_device(const thin::DeviceInfo& dev) override;
  Result<> end_device() override;
  Result<> map(const thin::MappingRun& run) override;

 private:
  void attr(std::string_view name, std::uint64_t v);
  thin::TextOutput& out_;
};

// Escapes &, <, >, " for an attribute value.
std::string escape_attr(std::string_view s);

}  // namespace thinmeta::xml
