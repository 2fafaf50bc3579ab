// SPDX-License-Identifier: GPL-3.0-or-later
// thin_send's logic: the stream of a thin device (full) or of what a reader of SNAP sees
// differently from a reader of BASE (incremental), from metadata already opened (an image, or
// a held metadata snapshot of a live pool) and the pool's data device. The ranges come from
// thin/copy_plan (key order, never all in memory); DATA is read through the copier's
// ReadPipeline (large requests, many in flight) and written as it arrives.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "data-plane/copier.h"
#include "data-plane/data_device.h"
#include "data-plane/stream_format.h"
#include "persistent-data/result.h"
#include "thin/metadata.h"

namespace thinmeta::dataplane {

// The identity of device `thin_id` in `md` (stream_format.h). Error if there is no such
// device (no details or no mapping tree).
Result<Identity> device_identity(const thin::Metadata& md, std::uint64_t thin_id);

struct SendRequest {
  std::optional<std::uint64_t> base_id;  // incremental when set
  std::uint64_t snap_id = 0;
  std::uint64_t size_bytes = 0;          // SNAP's virtual size (a multiple of 512)
  bool mapped_only = false;
  std::optional<ResumeToken> resume;
  CopierOptions copier;
};

struct SendStats {
  std::uint64_t data_bytes = 0, data_ranges = 0;  // ranges: runs of the plan, not records
  std::uint64_t zero_bytes = 0, zero_ranges = 0;
  std::uint64_t stream_bytes = 0;
};

// What the stream would carry, without reading data (dry run; also the total for progress).
Result<SendStats> plan_stream(const thin::Metadata& md, const SendRequest& req);

// Writes the stream to fd. `data_done` (optional) is advanced by the data bytes sent.
Result<SendStats> send_stream(const thin::Metadata& md, const DataDevice& data,
                              const SendRequest& req, int fd,
                              std::atomic<std::uint64_t>* data_done = nullptr);

}  // namespace thinmeta::dataplane
