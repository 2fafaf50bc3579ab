// SPDX-License-Identifier: GPL-3.0-or-later
// The device-mapper ioctl interface, spoken directly through /dev/mapper/control
// (<linux/dm-ioctl.h>; no libdevmapper: the tools link statically). Queries a device's live
// table and status by dev_t or name, and sends target messages. Knows nothing of dm-thin.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "persistent-data/result.h"

namespace thinmeta::dm {

// A device-mapper device: by name when `name` is set, else by device number.
struct DevRef {
  std::string name;
  dev_t dev = 0;
};

struct Target {
  std::uint64_t start = 0;   // sectors
  std::uint64_t length = 0;  // sectors
  std::string type;          // "thin", "thin-pool", "linear", ...
  std::string params;        // table parameters, or the status text
};

struct DeviceInfo {
  std::string name;
  dev_t dev = 0;
  int open_count = 0;
  bool suspended = false;
  bool live_table = false;
  bool read_only = false;
};

class Control {
 public:
  // Opens /dev/mapper/control (root only). Errors name the path and errno.
  static Result<Control> open();
  Control(Control&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Control& operator=(Control&&) = delete;
  ~Control();
  int fd() const { return fd_; }

  // ENXIO (not a device-mapper device, or none of that name) is Errc::kNotFound.
  Result<DeviceInfo> info(const DevRef& ref) const;
  // The live table (empty for a device without one); `info` filled when given.
  Result<std::vector<Target>> table(const DevRef& ref, DeviceInfo* info = nullptr) const;
  // The live table's status lines (Target::params holds each target's status text).
  Result<std::vector<Target>> status(const DevRef& ref) const;
  // Sends `message` to the target at `sector` of device `name`; returns the reply (often empty).
  Result<std::string> message(const std::string& name, std::uint64_t sector,
                              const std::string& message) const;

 private:
  explicit Control(int fd) : fd_(fd) {}
  Result<std::vector<Target>> table_or_status(const DevRef& ref, bool table,
                                              DeviceInfo* info) const;
  int fd_ = -1;
};

// Fills `buf` with a complete DM_TARGET_MSG request (message `message` to sector `sector` of
// device `name`), for a caller that must issue it later without allocating (a signal handler:
// ioctl(fd, DM_TARGET_MSG, buf) is async-signal-safe). False if it does not fit.
bool build_message_request(std::span<std::byte> buf, const std::string& name, std::uint64_t sector,
                           const std::string& message);
// The request number to pass with such a buffer.
unsigned long message_request_number();

}  // namespace thinmeta::dm
