// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/restore/spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace thinmeta::thin {
namespace {

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
  if (fd_ >= 0) {
    // Frames go straight from frame_ to the file: the output's own buffer stays minimal.
    out_.emplace(fd_, TextOutput::kMinBuffer);
    frame_ = std::make_unique_for_overwrite<char[]>(spill::kFrameBytes);
    end_ = frame_.get() + spill::kHeaderBytes;
  } else
    error_ = "Couldn't create a temporary file in '" + dir_ + "': " + std::strerror(errno);
}

SpillSink::~SpillSink() {
  out_.reset();
  if (fd_ >= 0) ::close(fd_);
}

void SpillSink::give_up() {
  out_.reset();
  frame_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SpillSink::fail_write() {
  std::string why = out_ ? out_->status().error().what : std::string("write failed");
  error_ = "Couldn't write a temporary file in '" + dir_ + "': " + why;
  give_up();
}

bool SpillSink::write_frame() {
  char* const frame = frame_.get();
  const auto size = static_cast<std::size_t>(end_ - frame);
  if (size > spill::kHeaderBytes) {
    if ((written_ += size) > kMaxBytes) {
      give_up();
      return false;
    }
    spill::seal_frame(frame, end_);
    out_->put(std::string_view(frame, size));
    if (out_->failed()) {
      fail_write();
      return false;
    }
  }
  end_ = frame + spill::kHeaderBytes;
  return true;
}

Result<> SpillSink::begin_superblock(const SuperblockInfo& sb) {
  THINMETA_CHECK(inner_.begin_superblock(sb));
  sb_ = sb;
  if (char* p = room()) end_ = spill::Encoder::superblock(p);
  return {};
}

Result<> SpillSink::end_superblock() {
  THINMETA_CHECK(inner_.end_superblock());
  if (char* p = room()) {
    end_ = spill::Encoder::end_superblock(p);
    if (write_frame() && !out_->flush()) fail_write();
  }
  done_ = fd_ >= 0;
  frame_.reset();
  return {};
}

Result<> SpillSink::begin_device(const DeviceInfo& dev) {
  THINMETA_CHECK(inner_.begin_device(dev));
  if (char* p = room()) end_ = enc_.device(p, dev);
  return {};
}

Result<> SpillSink::end_device() {
  THINMETA_CHECK(inner_.end_device());
  if (char* p = room()) end_ = spill::Encoder::end_device(p);
  return {};
}

Result<> SpillSink::map(const MappingRun& run) {
  THINMETA_CHECK(inner_.map(run));
  if (char* p = room()) end_ = enc_.map(p, run);
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

namespace {

// Up to n bytes at off (fewer only at the end of the file).
Result<std::size_t> read_at(int fd, char* buf, std::size_t n, off_t off) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, off + static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      return fail(Errc::kIo, std::string("Couldn't read the temporary record: ") +
                                 std::strerror(errno));
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

}  // namespace

Result<> SpillSink::replay(MetadataSink& out) {
  if (!complete()) return fail(Errc::kInvalidArgument, "no complete record to replay");
  return spill::replay(
      [fd = fd_](char* buf, std::size_t n, std::uint64_t off) {
        return read_at(fd, buf, n, static_cast<off_t>(off));
      },
      written_, sb_, out);
}

}  // namespace thinmeta::thin
