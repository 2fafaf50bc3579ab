// SPDX-License-Identifier: GPL-3.0-or-later
#include "dm/control.h"

#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace thinmeta::dm {

namespace {

constexpr const char* kControlPath = "/dev/mapper/control";

// An ioctl buffer: struct dm_ioctl followed by its payload, 8-byte aligned as the kernel wants.
class Request {
 public:
  explicit Request(std::size_t size) : words_((size + 7) / 8, 0) {
    auto* h = hdr();
    h->version[0] = DM_VERSION_MAJOR;
    h->version[1] = 0;
    h->version[2] = 0;
    h->data_size = static_cast<std::uint32_t>(words_.size() * 8);
    h->data_start = sizeof(struct dm_ioctl);
  }
  struct dm_ioctl* hdr() {
    return reinterpret_cast<struct dm_ioctl*>(words_.data());
  }
  char* bytes() { return reinterpret_cast<char*>(words_.data()); }
  std::size_t size() const { return words_.size() * 8; }

  bool set_ref(const DevRef& ref) {
    if (!ref.name.empty()) {
      if (ref.name.size() >= DM_NAME_LEN) return false;
      std::memcpy(hdr()->name, ref.name.data(), ref.name.size());
    } else {
      hdr()->dev = static_cast<std::uint64_t>(ref.dev);
    }
    return true;
  }

 private:
  std::vector<std::uint64_t> words_;
};

std::string describe(const DevRef& ref) {
  if (!ref.name.empty()) return "device-mapper device '" + ref.name + "'";
  return "device " + std::to_string(major(ref.dev)) + ":" + std::to_string(minor(ref.dev));
}

DeviceInfo info_of(struct dm_ioctl* h) {
  DeviceInfo i;
  i.name.assign(h->name, strnlen(h->name, DM_NAME_LEN));
  i.dev = static_cast<dev_t>(h->dev);
  i.open_count = h->open_count;
  i.suspended = (h->flags & DM_SUSPEND_FLAG) != 0;
  i.live_table = (h->flags & DM_ACTIVE_PRESENT_FLAG) != 0;
  i.read_only = (h->flags & DM_READONLY_FLAG) != 0;
  return i;
}

}  // namespace

Result<Control> Control::open() {
  int fd = ::open(kControlPath, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return fail(Errc::kIo,
                std::string("cannot open ") + kControlPath + ": " + std::strerror(errno));
  return Control(fd);
}

Control::~Control() {
  if (fd_ >= 0) ::close(fd_);
}

Result<DeviceInfo> Control::info(const DevRef& ref) const {
  Request r(sizeof(struct dm_ioctl) + 64);
  if (!r.set_ref(ref)) return fail(Errc::kInvalidArgument, "device-mapper name too long");
  if (ioctl(fd_, DM_DEV_STATUS, r.bytes()) < 0) {
    int e = errno;
    if (e == ENXIO) return fail(Errc::kNotFound, describe(ref) + " is not a device-mapper device");
    return fail(Errc::kIo, "device-mapper status of " + describe(ref) + ": " + std::strerror(e));
  }
  return info_of(r.hdr());
}

Result<std::vector<Target>> Control::table(const DevRef& ref, DeviceInfo* info) const {
  return table_or_status(ref, true, info);
}

Result<std::vector<Target>> Control::status(const DevRef& ref) const {
  return table_or_status(ref, false, nullptr);
}

Result<std::vector<Target>> Control::table_or_status(const DevRef& ref, bool table,
                                                     DeviceInfo* info) const {
  for (std::size_t size = 16384;; size *= 4) {
    Request r(size);
    if (!r.set_ref(ref)) return fail(Errc::kInvalidArgument, "device-mapper name too long");
    if (table) r.hdr()->flags |= DM_STATUS_TABLE_FLAG;
    if (ioctl(fd_, DM_TABLE_STATUS, r.bytes()) < 0) {
      int e = errno;
      if (e == ENXIO)
        return fail(Errc::kNotFound, describe(ref) + " is not a device-mapper device");
      return fail(Errc::kIo, std::string("device-mapper ") + (table ? "table" : "status") + " of " +
                                 describe(ref) + ": " + std::strerror(e));
    }
    auto* h = r.hdr();
    if (h->flags & DM_BUFFER_FULL_FLAG) {
      if (size >= (64u << 20))
        return fail(Errc::kIo, "device-mapper table of " + describe(ref) + " too large");
      continue;
    }
    if (info) *info = info_of(h);
    std::vector<Target> out;
    std::size_t at = h->data_start;
    const std::size_t end = std::min<std::size_t>(h->data_size, r.size());
    for (std::uint32_t i = 0; i < h->target_count; ++i) {
      if (at + sizeof(struct dm_target_spec) > end)
        return fail(Errc::kIo, "device-mapper returned a malformed table for " + describe(ref));
      struct dm_target_spec spec;
      std::memcpy(&spec, r.bytes() + at, sizeof spec);
      const char* p = r.bytes() + at + sizeof spec;
      std::size_t room = end - (at + sizeof spec);
      Target t;
      t.start = spec.sector_start;
      t.length = spec.length;
      t.type.assign(spec.target_type, strnlen(spec.target_type, DM_MAX_TYPE_NAME));
      t.params.assign(p, strnlen(p, room));
      out.push_back(std::move(t));
      // `next` is the offset from this spec to the next one (table and status replies alike).
      if (spec.next == 0 && i + 1 < h->target_count)
        return fail(Errc::kIo, "device-mapper returned a malformed table for " + describe(ref));
      at += spec.next;
    }
    return out;
  }
}

bool build_message_request(std::span<std::byte> buf, const std::string& name, std::uint64_t sector,
                           const std::string& message) {
  const std::size_t need =
      sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + message.size() + 1;
  if (buf.size() < need || name.size() >= DM_NAME_LEN ||
      reinterpret_cast<std::uintptr_t>(buf.data()) % 8 != 0)
    return false;
  std::memset(buf.data(), 0, buf.size());
  struct dm_ioctl h;
  std::memset(&h, 0, sizeof h);
  h.version[0] = DM_VERSION_MAJOR;
  h.data_size = static_cast<std::uint32_t>(buf.size());
  h.data_start = sizeof(struct dm_ioctl);
  std::memcpy(h.name, name.data(), name.size());
  std::memcpy(buf.data(), &h, sizeof h);
  struct dm_target_msg m;
  std::memset(&m, 0, sizeof m);
  m.sector = sector;
  std::memcpy(buf.data() + sizeof h, &m, sizeof m);
  std::memcpy(buf.data() + sizeof h + sizeof m, message.data(), message.size());
  return true;
}

unsigned long message_request_number() { return DM_TARGET_MSG; }

Result<std::string> Control::message(const std::string& name, std::uint64_t sector,
                                     const std::string& message) const {
  const std::size_t size =
      sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + message.size() + 4096;
  std::vector<std::uint64_t> words((size + 7) / 8, 0);
  std::span<std::byte> buf(reinterpret_cast<std::byte*>(words.data()), words.size() * 8);
  if (!build_message_request(buf, name, sector, message))
    return fail(Errc::kInvalidArgument, "device-mapper name too long: '" + name + "'");
  if (ioctl(fd_, DM_TARGET_MSG, buf.data()) < 0) {
    int e = errno;
    return fail(Errc::kIo, "message '" + message + "' to device-mapper device '" + name +
                               "' failed: " + std::strerror(e));
  }
  struct dm_ioctl h;
  std::memcpy(&h, buf.data(), sizeof h);
  std::string reply;
  if ((h.flags & DM_DATA_OUT_FLAG) && h.data_start < buf.size()) {
    const char* p = reinterpret_cast<const char*>(buf.data()) + h.data_start;
    reply.assign(p, strnlen(p, buf.size() - h.data_start));
  }
  return reply;
}

}  // namespace thinmeta::dm
