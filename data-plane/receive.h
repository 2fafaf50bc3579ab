// SPDX-License-Identifier: GPL-3.0-or-later
// thin_receive's logic: a stream (stream_io.h) applied to a block device or a file. Every
// record is verified before it is written; an incremental or resumed stream is applied only
// onto the state it continues (receive_state.h), refused before anything is written; an
// interrupted receive records how far it got and hands back a resume token.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>

#include "data-plane/copier.h"
#include "data-plane/receive_state.h"
#include "data-plane/stream_format.h"
#include "persistent-data/result.h"

namespace thinmeta::dataplane {

struct ReceiveOptions {
  std::string target;
  bool dry_run = false;  // verify the stream and the base, write nothing
  bool force = false;    // apply whatever the recorded state says
  // > 0: the target reads every whole discarded block of this size as zeros (a dm-thin device
  // without an external origin, discards not ignored): ZERO ranges are discarded there.
  std::uint64_t discard_block_bytes = 0;
  std::string state_dir;  // empty: StateStore's default
  CopierOptions copier;
  // Set (by a signal handler) to stop at the next record: the receive ends as interrupted.
  const volatile std::sig_atomic_t* stop = nullptr;
};

struct ReceiveResult {
  StreamHeader header;
  EndRecord counts;
  std::uint64_t stream_bytes = 0;
  bool created = false;  // the target file was created
};

struct ReceiveFailure {
  Error error;
  // Set when the records before the failure are applied and recorded: a stream resumed from
  // here finishes the transfer.
  std::optional<std::string> resume_token;
};

// Reads the stream from in_fd and applies it. `bytes_done` (optional) counts stream bytes.
std::expected<ReceiveResult, ReceiveFailure> receive_stream(
    const ReceiveOptions& opts, int in_fd, std::atomic<std::uint64_t>* bytes_done = nullptr);

}  // namespace thinmeta::dataplane
