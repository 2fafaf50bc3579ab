// SPDX-License-Identifier: GPL-3.0-or-later
// Blocks moved by every file-backed engine of the process (sync, libaio, io_uring), counted as
// they are read or written: what a progress report (bin/progress.h) samples. Relaxed atomics,
// one add per batch: nothing measurable on the I/O path.
#pragma once

#include <atomic>
#include <cstdint>

namespace thinmeta::pdata {

struct IoCounters {
  std::atomic<std::uint64_t> blocks_read{0};
  std::atomic<std::uint64_t> blocks_written{0};
};

inline IoCounters& io_counters() {
  static IoCounters c;
  return c;
}

inline void count_reads(std::uint64_t n) {
  io_counters().blocks_read.fetch_add(n, std::memory_order_relaxed);
}
inline void count_writes(std::uint64_t n) {
  io_counters().blocks_written.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace thinmeta::pdata
