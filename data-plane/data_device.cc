// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/data_device.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "persistent-data/io/block.h"

namespace thinmeta::dataplane {
namespace {

// Moves `len` bytes with io(done) (one pread or pwrite of what is left, `done` bytes in), again
// after EINTR and short transfers. 0 when all moved, else the errno of the failed call, or
// `none` when a call moved nothing (a read past the end, a write to a full device).
template <typename Io>
int transfer_all(std::size_t len, int none, Io&& io) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = io(done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return none;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

DataDevice::~DataDevice() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (buffered_fd_ >= 0) ::close(buffered_fd_);
}

Result<> DataDevice::fail_errno(const char* what, int e) const {
  return fail(e == ENOSPC ? Errc::kNoSpace : Errc::kIo,
              std::string(what) + " '" + path_ + "' failed: " + std::strerror(e));
}

Result<std::unique_ptr<DataDevice>> DataDevice::open(const std::string& path,
                                                     const DeviceOptions& opts) {
  std::unique_ptr<DataDevice> d(new DataDevice());
  d->path_ = path;
  d->writable_ = opts.writable;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if ((errno == ENOENT) && opts.create_size && opts.writable) {
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0)
        return fail(Errc::kIo, "Couldn't create '" + path + "': " + std::strerror(errno));
      if (::ftruncate(fd, static_cast<off_t>(opts.create_size)) != 0) {
        int e = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return fail(Errc::kIo, "Couldn't size '" + path + "': " + std::strerror(e));
      }
      ::close(fd);
      d->created_ = true;
      if (::stat(path.c_str(), &st) != 0)
        return fail(Errc::kIo, "Couldn't stat '" + path + "': " + std::strerror(errno));
    } else if (errno == ENOENT || errno == ENOTDIR) {
      return fail(Errc::kNotFound, "Couldn't find input file '" + path + "'");
    } else {
      return fail(Errc::kIo, "Couldn't stat '" + path + "': " + std::strerror(errno));
    }
  }
  bool blk = S_ISBLK(st.st_mode);
  if (!blk && !S_ISREG(st.st_mode))
    return fail(Errc::kInvalidArgument, "Not a block device or regular file '" + path + "'.");
  d->id_.block_device = blk;
  d->id_.rdev = blk ? st.st_rdev : 0;
  d->id_.dev = st.st_dev;
  d->id_.ino = st.st_ino;

  int flags = (opts.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  int excl = blk && opts.exclusive ? O_EXCL : 0;
  auto open_error = [&](int e) {
    if (e == EBUSY)
      return fail(Errc::kIo, "Couldn't open '" + path + "': Device or resource busy (it is in "
                                 "use: mounted, or held by a device-mapper table)");
    return fail(Errc::kIo, "Couldn't open '" + path + "': " + std::strerror(e));
  };
  if (opts.direct) {
    d->direct_fd_ = ::open(path.c_str(), flags | excl | O_DIRECT);
    if (d->direct_fd_ < 0) {
      if (errno != EINVAL) return open_error(errno);
    } else {
      excl = 0;  // the exclusive claim is held by the direct descriptor
    }
  }
  d->buffered_fd_ = ::open(path.c_str(), flags | excl);
  if (d->buffered_fd_ < 0) return open_error(errno);

  d->size_ = static_cast<std::uint64_t>(st.st_size);
  if (blk) {
    if (::ioctl(d->buffered_fd_, BLKGETSIZE64, &d->size_) != 0)
      return fail(Errc::kIo, "Couldn't get the size of '" + path + "': " + std::strerror(errno));
    int lbs = 0;
    if (::ioctl(d->buffered_fd_, BLKSSZGET, &lbs) == 0 && lbs > 0)
      d->align_ = static_cast<std::size_t>(lbs);
  }
  return d;
}

int DataDevice::fd_for(std::uint64_t offset, std::size_t len, const void* buf) const {
  if (direct_fd_ < 0) return buffered_fd_;
  auto a = static_cast<std::uint64_t>(align_);
  if (offset % a || len % a || reinterpret_cast<std::uintptr_t>(buf) % a) return buffered_fd_;
  return direct_fd_;
}

Result<> DataDevice::read_at(std::uint64_t offset, std::uint8_t* buf, std::size_t len) const {
  int fd = fd_for(offset, len, buf);
  int e = transfer_all(len, EIO, [&](std::size_t done) {
    return ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
  });
  return e ? fail_errno("read of", e) : Result<>{};
}

Result<> DataDevice::write_at(std::uint64_t offset, const std::uint8_t* buf, std::size_t len) {
  int fd = fd_for(offset, len, buf);
  int e = transfer_all(len, ENOSPC, [&](std::size_t done) {
    return ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
  });
  return e ? fail_errno("write to", e) : Result<>{};
}

Result<> DataDevice::write_zeros(std::uint64_t offset, std::uint64_t len) {
  if (!len) return {};
  if (is_block_device() && offset % 512 == 0 && len % 512 == 0) {
    std::uint64_t range[2] = {offset, len};
    if (::ioctl(buffered_fd_, BLKZEROOUT, range) == 0) return {};
    if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
      return fail_errno("zeroing of", errno);
  }
  // Plain writes of a zeroed buffer, aligned for the direct descriptor where possible.
  constexpr std::size_t kChunk = 1 << 20;
  static const pdata::AlignedBuffer zeros(kChunk / pdata::kBlockSize);
  while (len) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, kChunk));
    THINMETA_CHECK(write_at(offset, zeros.data(), n));
    offset += n;
    len -= n;
  }
  return {};
}

Result<> DataDevice::make_zero(std::uint64_t offset, std::uint64_t len,
                               std::uint64_t discard_block_bytes) {
  if (!len) return {};
  if (!is_block_device()) {
    if (::fallocate(buffered_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(len)) == 0)
      return {};
    if (errno != EOPNOTSUPP)
      return fail_errno("punching a hole in", errno);
    if (::fallocate(buffered_fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(len)) == 0)
      return {};
    return write_zeros(offset, len);
  }
  if (discard_block_bytes) {
    std::uint64_t b = discard_block_bytes;
    std::uint64_t first = (offset + b - 1) / b * b, last = (offset + len) / b * b;
    if (first < last) {
      THINMETA_CHECK(write_zeros(offset, first - offset));
      std::uint64_t range[2] = {first, last - first};
      if (::ioctl(buffered_fd_, BLKDISCARD, range) != 0) return fail_errno("discard on", errno);
      return write_zeros(last, offset + len - last);
    }
    return write_zeros(offset, len);
  }
  if (offset % 512 == 0 && len % 512 == 0 &&
      ::fallocate(buffered_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(len)) == 0)
    return {};
  return write_zeros(offset, len);
}

Result<> DataDevice::truncate(std::uint64_t size) {
  if (is_block_device()) return fail(Errc::kInvalidArgument, "cannot resize block device '" + path_ + "'");
  if (::ftruncate(buffered_fd_, static_cast<off_t>(size)) != 0)
    return fail_errno("resizing", errno);
  size_ = size;
  return {};
}

Result<> DataDevice::sync() {
  if (!writable_) return {};
  for (int fd : {direct_fd_, buffered_fd_})
    if (fd >= 0 && ::fsync(fd) != 0 && errno != EINVAL) return fail_errno("sync of", errno);
  return {};
}

}  // namespace thinmeta::dataplane
