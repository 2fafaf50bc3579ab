// SPDX-License-Identifier: GPL-3.0-or-later
// Opening a metadata device or image: stat checks, O_DIRECT on block devices, O_EXCL on request.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "persistent-data/io/aio_engine.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/io/mmap_engine.h"
#include "persistent-data/io/sync_engine.h"
#include "persistent-data/io/uring_engine.h"

namespace thinmeta::pdata {

Result<std::unique_ptr<IoEngine>> open_engine(const std::string& path, const OpenOptions& opts) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return fail(Errc::kNotFound, "Couldn't find input file '" + path + "'");
    return fail(Errc::kIo, "Couldn't stat '" + path + "': " + std::strerror(errno));
  }
  bool is_blk = S_ISBLK(st.st_mode);
  if (!is_blk && !S_ISREG(st.st_mode))
    return fail(Errc::kInvalidArgument, "Not a block device or regular file '" + path + "'.");

  // Engine: asynchronous O_DIRECT for block devices (bypass the page cache: the kernel may be
  // writing the device), io_uring or else libaio; pread through the page cache for image
  // files. THINMETA_IO_ENGINE (or OpenOptions::engine) forces one; aio on a file uses
  // O_DIRECT when the file system allows it; mmap maps a file (blocks visited where the page
  // cache holds them; not the default: no cheaper than pread here, see mmap_engine.h) and
  // means sync on a block device.
  EngineKind kind = opts.engine == EngineKind::kAuto ? engine_from_env() : opts.engine;
  if (kind == EngineKind::kAuto) kind = is_blk ? EngineKind::kAio : EngineKind::kSync;
  if (is_blk && kind == EngineKind::kMmap) kind = EngineKind::kSync;
  int flags = (opts.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  if (is_blk && opts.exclusive) flags |= O_EXCL;
  bool direct = is_blk || kind == EngineKind::kAio || kind == EngineKind::kLibaio;
  int fd = ::open(path.c_str(), direct ? flags | O_DIRECT : flags);
  if (fd < 0 && direct && errno == EINVAL && !is_blk)  // file system without O_DIRECT
    fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    int e = errno;
    if (e == EBUSY)
      return fail(Errc::kIo, "Couldn't open '" + path +
                                 "': Device or resource busy (you cannot run this tool with "
                                 "these options on live metadata)");
    return fail(Errc::kIo, "Couldn't open '" + path + "': " + std::strerror(e));
  }
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (is_blk && ::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    int e = errno;
    ::close(fd);
    return fail(Errc::kIo, "Couldn't get the size of '" + path + "': " + std::strerror(e));
  }
  if (kind == EngineKind::kMmap)
    if (auto mapped = make_mmap_engine(fd, size, path)) return mapped;
  if (kind == EngineKind::kAio)
    if (auto uring = make_uring_engine(fd, size, kDefaultQueueDepth)) return uring;
  if (kind == EngineKind::kAio || kind == EngineKind::kLibaio)
    if (auto aio = make_aio_engine(fd, size)) return aio;
  return make_sync_engine(fd, size);
}

}  // namespace thinmeta::pdata
