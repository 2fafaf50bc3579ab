// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/restore/spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

namespace thinmeta::thin {
namespace {

constexpr std::size_t kBufSize = 1 << 20;
// Records: a kind byte, then the payload of that kind's fixed size.
constexpr char kSuperblock = 'S', kEndSuperblock = 's', kDevice = 'D', kEndDevice = 'd',
               kMap = 'M';
static_assert(std::is_trivially_copyable_v<MappingRun> && std::is_trivially_copyable_v<DeviceInfo>);

std::size_t payload_size(char kind) {
  switch (kind) {
    case kDevice: return sizeof(DeviceInfo);
    case kMap: return sizeof(MappingRun);
    case kSuperblock:
    case kEndSuperblock:
    case kEndDevice: return 0;
    default: return SIZE_MAX;
  }
}

// $TMPDIR, else /tmp.
std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

// An unlinked file in `d`, or -1 with errno set.
int temp_file(const std::string& d) {
  int fd = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string tmpl = d + "/thinmeta-spill-XXXXXX";
  fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd >= 0) ::unlink(tmpl.c_str());
  return fd;
}

}  // namespace

SpillSink::SpillSink(MetadataSink& inner) : inner_(inner), dir_(temp_dir()) {
  fd_ = temp_file(dir_);
  if (fd_ >= 0)
    out_.emplace(fd_, kBufSize);
  else
    error_ = "Couldn't create a temporary file in '" + dir_ + "': " + std::strerror(errno);
}

SpillSink::~SpillSink() {
  out_.reset();
  if (fd_ >= 0) ::close(fd_);
}

void SpillSink::give_up() {
  out_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SpillSink::fail_write() {
  std::string why = out_ ? out_->status().error().what : std::string("write failed");
  error_ = "Couldn't write a temporary file in '" + dir_ + "': " + why;
  give_up();
}

void SpillSink::put(char kind, const void* payload, std::size_t len) {
  if (!out_) return;
  out_->put(kind);
  if (len) out_->put(std::string_view(static_cast<const char*>(payload), len));
  if (out_->failed())
    fail_write();
  else if ((written_ += 1 + len) > kMaxBytes)
    give_up();
}

Result<> SpillSink::begin_superblock(const SuperblockInfo& sb) {
  THINMETA_CHECK(inner_.begin_superblock(sb));
  sb_ = sb;
  put(kSuperblock, nullptr, 0);
  return {};
}

Result<> SpillSink::end_superblock() {
  THINMETA_CHECK(inner_.end_superblock());
  put(kEndSuperblock, nullptr, 0);
  if (out_ && !out_->flush()) fail_write();
  done_ = fd_ >= 0;
  return {};
}

Result<> SpillSink::begin_device(const DeviceInfo& dev) {
  THINMETA_CHECK(inner_.begin_device(dev));
  put(kDevice, &dev, sizeof(dev));
  return {};
}

Result<> SpillSink::end_device() {
  THINMETA_CHECK(inner_.end_device());
  put(kEndDevice, nullptr, 0);
  return {};
}

Result<> SpillSink::map(const MappingRun& run) {
  THINMETA_CHECK(inner_.map(run));
  put(kMap, &run, sizeof(run));
  return {};
}

Result<> SpillSink::begin_def(std::string_view name) {
  give_up();
  return inner_.begin_def(name);
}

Result<> SpillSink::end_def() {
  give_up();
  return inner_.end_def();
}

Result<> SpillSink::ref(std::string_view name) {
  give_up();
  return inner_.ref(name);
}

Result<> SpillSink::check(const SpillSink* spill) {
  if (!spill || spill->complete() || !spill->error_) return {};
  return fail(Errc::kIo, *spill->error_ +
                             " (the record of the input for the second pass, which never reads "
                             "the input again); set TMPDIR to a writable directory with room "
                             "for it");
}

Result<> SpillSink::replay(MetadataSink& out) {
  if (!complete()) return fail(Errc::kInvalidArgument, "no complete record to replay");
  auto bad = [] { return fail(Errc::kIo, "the temporary record of the input is damaged"); };
  std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(kBufSize);
  std::size_t have = 0;
  off_t off = 0;
  bool eof = false;
  for (;;) {
    // Refill: keep the partial record at the end, read after it.
    if (!eof) {
      ssize_t n;
      do {
        n = ::pread(fd_, buf.get() + have, kBufSize - have, off);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return fail(Errc::kIo, std::string("Couldn't read the temporary record: ") +
                                            std::strerror(errno));
      eof = n == 0;
      have += static_cast<std::size_t>(n);
      off += n;
    }
    std::size_t p = 0;
    while (p < have) {
      char kind = buf[p];
      std::size_t len = payload_size(kind);
      if (len == SIZE_MAX) return bad();
      if (have - p < 1 + len) break;  // the rest of it comes with the next read
      const char* q = buf.get() + p + 1;
      switch (kind) {
        case kSuperblock: THINMETA_CHECK(out.begin_superblock(sb_)); break;
        case kEndSuperblock: return out.end_superblock();
        case kEndDevice: THINMETA_CHECK(out.end_device()); break;
        case kDevice: {
          DeviceInfo d;
          std::memcpy(&d, q, sizeof(d));
          THINMETA_CHECK(out.begin_device(d));
          break;
        }
        case kMap: {
          MappingRun r;
          std::memcpy(&r, q, sizeof(r));
          THINMETA_CHECK(out.map(r));
          break;
        }
      }
      p += 1 + len;
    }
    if (eof) return bad();  // ended before end_superblock
    std::memmove(buf.get(), buf.get() + p, have - p);
    have -= p;
  }
}

}  // namespace thinmeta::thin
