// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/io_plan.h"

#include "persistent-data/io/io_counters.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace thinmeta::pdata {

IoPlan plan_reads(std::span<const BlockAddr> addrs, BlockAddr nr_blocks, std::uint8_t* bufs,
                  std::uint8_t* gap_scratch, std::span<int> errs, const GapSink* sink) {
  IoPlan plan;
  plan.reqs.reserve(addrs.size());
  // The requests first: [i, j) of addrs each, and whether they have gaps.
  std::size_t i = 0, wanted = 0;
  while (i < addrs.size()) {
    if (addrs[i] >= nr_blocks) {
      errs[i] = EINVAL;
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    bool gaps = false;
    while (j < addrs.size() && addrs[j] > addrs[j - 1] && addrs[j] < nr_blocks &&
           addrs[j] - addrs[j - 1] - 1 <= kMaxGap && addrs[j] - addrs[i] < kMaxRunBlocks) {
      if (addrs[j] != addrs[j - 1] + 1) {
        gaps = true;
        if (sink)
          for (BlockAddr g = addrs[j - 1] + 1; g < addrs[j]; ++g) wanted += sink->wants(g);
      }
      ++j;
    }
    IoRequest r{i, j - i, addrs[i], 0, j - i, 0, 0};
    if (gaps) r.span = addrs[j - 1] - addrs[i] + 1;
    plan.reqs.push_back(r);
    i = j;
  }
  if (wanted) {
    // Reused by every batch this thread reads (a check reads ~600 batches), grown
    // geometrically; only read into (a slot is handed over only when its read succeeded).
    thread_local AlignedBuffer harvest;
    if (harvest.capacity() < wanted)
      harvest.resize_for_reads(std::max(wanted, 2 * harvest.capacity()));
    plan.harvest = harvest.data();
  }
  // Then the scatter lists of those with gaps: the caller's blocks, the scratch for gap blocks
  // nobody wants, a harvest slot for each one the sink wants.
  auto add = [&](std::uint8_t* p, std::size_t len) {
    if (!plan.iovs.empty() && p != gap_scratch &&
        static_cast<std::uint8_t*>(plan.iovs.back().iov_base) + plan.iovs.back().iov_len == p)
      plan.iovs.back().iov_len += len;
    else
      plan.iovs.push_back(iovec{p, len});
  };
  for (std::size_t q = 0; q < plan.reqs.size(); ++q) {
    IoRequest& r = plan.reqs[q];
    if (r.span == r.nr) continue;
    r.iov_first = static_cast<std::uint32_t>(plan.iovs.size());
    for (std::size_t k = r.first; k < r.first + r.nr; ++k) {
      if (k > r.first && addrs[k] != addrs[k - 1] + 1) {
        BlockAddr g = addrs[k - 1] + 1;
        while (g < addrs[k]) {
          if (plan.harvested.size() < wanted && sink->wants(g)) {
            add(plan.harvest + plan.harvested.size() * kBlockSize, kBlockSize);
            plan.harvested.push_back({g, q});
            ++g;
            continue;
          }
          BlockAddr e = g + 1;
          while (e < addrs[k] && !(plan.harvested.size() < wanted && sink->wants(e))) ++e;
          plan.iovs.push_back(iovec{gap_scratch, (e - g) * kBlockSize});
          g = e;
        }
      }
      if (plan.iovs.size() == r.iov_first)
        plan.iovs.push_back(iovec{bufs + k * kBlockSize, kBlockSize});
      else
        add(bufs + k * kBlockSize, kBlockSize);
    }
    r.iov_n = static_cast<std::uint32_t>(plan.iovs.size() - r.iov_first);
  }
  return plan;
}

IoPlan plan_writes(std::span<const BlockAddr> addrs) {
  IoPlan plan;
  plan.reqs.reserve(addrs.size());
  std::size_t i = 0;
  while (i < addrs.size()) {
    std::size_t j = i + 1;
    while (j < addrs.size() && addrs[j] == addrs[j - 1] + 1 && j - i < kMaxRunBlocks) ++j;
    plan.reqs.push_back(IoRequest{i, j - i, addrs[i], 0, j - i, 0, 0});
    i = j;
  }
  return plan;
}

void run_request_sync(int fd, IoRequest& r, std::uint8_t* bufs, bool write, const IoPlan& plan) {
  auto off = static_cast<off_t>(r.block * kBlockSize);
  if (r.iov_n) {  // a short read is an error here: finish_reads retries block by block
    ssize_t n;
    do {
      n = ::preadv(fd, plan.iovs.data() + r.iov_first, static_cast<int>(r.iov_n), off);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
      r.err = errno;
    else if (static_cast<std::size_t>(n) != r.bytes())
      r.err = EIO;
    return;
  }
  std::uint8_t* p = bufs + r.first * kBlockSize;
  std::size_t len = r.nr * kBlockSize, got = 0;
  while (got < len) {
    ssize_t n = write ? ::pwrite(fd, p + got, len - got, off + static_cast<off_t>(got))
                      : ::pread(fd, p + got, len - got, off + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      r.err = n < 0 ? errno : EIO;
      return;
    }
    got += static_cast<std::size_t>(n);
  }
}

void finish_reads(int fd, IoPlan& plan, std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                  std::span<int> errs, GapSink* sink) {
  if (sink)
    for (std::size_t k = 0; k < plan.harvested.size(); ++k)
      if (!plan.reqs[plan.harvested[k].req].err)
        sink->take(plan.harvested[k].addr, plan.harvest + k * kBlockSize);
  for (const IoRequest& r : plan.reqs) {
    if (r.err && r.iov_n) {
      for (std::size_t k = r.first; k < r.first + r.nr;) {
        std::size_t e = k + 1;
        while (e < r.first + r.nr && addrs[e] == addrs[e - 1] + 1) ++e;
        IoRequest one{k, e - k, addrs[k], 0, e - k, 0, 0};
        run_request_sync(fd, one, bufs, false, plan);
        for (std::size_t m = k; m < e; ++m) errs[m] = one.err;
        k = e;
      }
      continue;
    }
    for (std::size_t k = 0; k < r.nr; ++k) errs[r.first + k] = r.err;
  }
}

Result<> check_write_range(std::span<const BlockAddr> addrs, BlockAddr nr_blocks) {
  for (BlockAddr a : addrs)
    if (a >= nr_blocks)
      return fail(Errc::kNoSpace, "write beyond the end of the metadata device (block " +
                                      std::to_string(a) + ")");
  return {};
}

Result<> write_result(const IoPlan& plan) {
  for (const IoRequest& r : plan.reqs)
    if (r.err)
      return fail(Errc::kIo, "write of metadata block " + std::to_string(r.block) +
                                 " failed: " + std::strerror(r.err));
  return {};
}

PlannedEngine::PlannedEngine(int fd, std::uint64_t size_bytes)
    : fd_(fd), nr_(size_bytes / kBlockSize), gap_scratch_(kMaxGap) {}

PlannedEngine::~PlannedEngine() { ::close(fd_); }

void PlannedEngine::read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                              std::span<int> errs) {
  GapSink* sink = sink_.load(std::memory_order_acquire);
  IoPlan plan = plan_reads(addrs, nr_, bufs, gap_scratch_.data(), errs, sink);
  run(plan, bufs, /*write=*/false);
  finish_reads(fd_, plan, addrs, bufs, errs, sink);
  count_reads(addrs.size());
}

Result<> PlannedEngine::write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) {
  THINMETA_CHECK(check_write_range(addrs, nr_));
  IoPlan plan = plan_writes(addrs);
  run(plan, const_cast<std::uint8_t*>(bufs), /*write=*/true);
  count_writes(addrs.size());
  return write_result(plan);
}

Result<> flush_fd(int fd) {
  if (::fsync(fd) != 0 && errno != EINVAL)
    return fail(Errc::kIo, std::string("flush failed: ") + std::strerror(errno));
  return {};
}

}  // namespace thinmeta::pdata
