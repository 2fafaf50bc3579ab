// SPDX-License-Identifier: GPL-3.0-or-later
// A data device or image file opened for the data plane: large reads and writes (O_DIRECT where
// the kernel allows it), and the ways of making a range read as zeros. Knows nothing of
// dm-thin's metadata; which zeroing is right for a target is the caller's choice (the
// receiver knows whether a block device is a dm-thin device and its block size).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "persistent-data/result.h"

namespace thinmeta::dataplane {

struct DeviceOptions {
  bool writable = false;
  // O_EXCL on a block device: refused ("Device or resource busy") while a device-mapper table,
  // a mounted file system or another exclusive opener holds it.
  bool exclusive = false;
  // A missing regular file is created (mode 0666 & ~umask) with this size in bytes; 0: a
  // missing file is an error.
  std::uint64_t create_size = 0;
  // O_DIRECT when the file system or device accepts it (the page cache is bypassed: data
  // copies do not evict everything else, and block devices are read as the kernel wrote them).
  bool direct = true;
};

// What identifies the thing opened, for records kept about it (thin_receive's state):
// block devices by their device number, files by file system and inode.
struct DeviceIdentity {
  bool block_device = false;
  dev_t rdev = 0;   // block devices
  dev_t dev = 0;    // files: the file system
  ino_t ino = 0;    // files
};

class DataDevice {
 public:
  ~DataDevice();
  DataDevice(const DataDevice&) = delete;
  DataDevice& operator=(const DataDevice&) = delete;

  // Errors use the tools' wording: "Couldn't find input file '<path>'", "Couldn't open
  // '<path>': <strerror>", "Not a block device or regular file '<path>'.".
  static Result<std::unique_ptr<DataDevice>> open(const std::string& path,
                                                  const DeviceOptions& opts);

  const std::string& path() const { return path_; }
  std::uint64_t size_bytes() const { return size_; }
  bool is_block_device() const { return id_.block_device; }
  const DeviceIdentity& identity() const { return id_; }
  // True when a newly created file (opened with create_size).
  bool created() const { return created_; }

  // The descriptor for a transfer of `len` bytes at `offset` from/to `buf`: the O_DIRECT one
  // when the three are aligned to direct_alignment(), else the buffered one.
  int fd_for(std::uint64_t offset, std::size_t len, const void* buf) const;
  // 0 if there is no O_DIRECT descriptor; else the alignment it needs (the logical block size
  // for block devices, 4096 for files).
  std::size_t direct_alignment() const { return direct_fd_ >= 0 ? align_ : 0; }

  // Synchronous transfers (the pipelines in copier.h are the fast path): whole length or error.
  Result<> read_at(std::uint64_t offset, std::uint8_t* buf, std::size_t len) const;
  Result<> write_at(std::uint64_t offset, const std::uint8_t* buf, std::size_t len);

  // Makes [offset, offset + len) read as zeros. Files: a hole is punched (FALLOC_FL_PUNCH_HOLE,
  // the file keeps its size), else FALLOC_FL_ZERO_RANGE, else zeros are written. Block
  // devices: `discard_block_bytes` > 0 says the device reads every whole discarded block of
  // that size as zeros (a dm-thin device without an external origin): whole blocks are
  // discarded (BLKDISCARD), the partial ends zeroed; 0: the kernel's write-zeroes with unmap
  // allowed (fallocate PUNCH_HOLE on the device) where the device has it, else BLKZEROOUT.
  // Never a plain discard where the device does not guarantee zeros after it.
  Result<> make_zero(std::uint64_t offset, std::uint64_t len, std::uint64_t discard_block_bytes = 0);
  // Zeros written (BLKZEROOUT on block devices, which may provision a thin device).
  Result<> write_zeros(std::uint64_t offset, std::uint64_t len);
  // Regular files only: sets the size (grows sparse, or cuts).
  Result<> truncate(std::uint64_t size);
  // fsync of both descriptors.
  Result<> sync();

 private:
  DataDevice() = default;
  Result<> fail_errno(const char* what, int e) const;

  std::string path_;
  int direct_fd_ = -1;    // O_DIRECT, -1 if refused or not asked for
  int buffered_fd_ = -1;  // always open
  std::size_t align_ = 4096;
  std::uint64_t size_ = 0;
  DeviceIdentity id_;
  bool created_ = false;
  bool writable_ = false;
};

}  // namespace thinmeta::dataplane
