// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io_plan.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace thinmeta::pdata {

IoPlan plan_reads(std::span<const BlockAddr> addrs, BlockAddr nr_blocks, std::uint8_t* bufs,
                  std::uint8_t* gap_scratch, std::span<int> errs) {
  IoPlan plan;
  plan.reqs.reserve(addrs.size());
  std::size_t i = 0;
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
      gaps = gaps || addrs[j] != addrs[j - 1] + 1;
      ++j;
    }
    IoRequest r{i, j - i, addrs[i], 0, j - i, 0, 0};
    if (gaps) {
      r.span = addrs[j - 1] - addrs[i] + 1;
      r.iov_first = static_cast<std::uint32_t>(plan.iovs.size());
      for (std::size_t k = i; k < j; ++k) {
        if (k > i && addrs[k] == addrs[k - 1] + 1) {
          plan.iovs.back().iov_len += kBlockSize;  // the caller's blocks k - 1 and k adjoin
          continue;
        }
        if (k > i)
          plan.iovs.push_back(iovec{gap_scratch, (addrs[k] - addrs[k - 1] - 1) * kBlockSize});
        plan.iovs.push_back(iovec{bufs + k * kBlockSize, kBlockSize});
      }
      r.iov_n = static_cast<std::uint32_t>(plan.iovs.size() - r.iov_first);
    }
    plan.reqs.push_back(r);
    i = j;
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
                  std::span<int> errs) {
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

Result<> flush_fd(int fd) {
  if (::fsync(fd) != 0 && errno != EINVAL)
    return fail(Errc::kIo, std::string("flush failed: ") + std::strerror(errno));
  return {};
}

}  // namespace thinmeta::pdata
