// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/receive_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace thinmeta::dataplane {

namespace {

constexpr const char* kDefaultDir = "/var/lib/thinmeta/receive";

std::string read_sys(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

Result<> mkdirs(const std::string& dir) {
  std::string cur;
  std::size_t i = 0;
  while (i <= dir.size()) {
    std::size_t j = dir.find('/', i);
    if (j == std::string::npos) j = dir.size();
    cur = dir.substr(0, j);
    if (!cur.empty() && ::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      return fail(Errc::kIo, "Couldn't create the state directory '" + dir + "': " + std::strerror(errno));
    i = j + 1;
  }
  return {};
}

}  // namespace

StateStore::StateStore(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) {
    const char* e = std::getenv("THINMETA_RECEIVE_STATE_DIR");
    dir_ = e && *e ? e : kDefaultDir;
  }
}

std::string StateStore::key(const DataDevice& dev) {
  const DeviceIdentity& id = dev.identity();
  if (id.block_device) {
    std::string sys = "/sys/dev/block/" + std::to_string(major(id.rdev)) + ":" +
                      std::to_string(minor(id.rdev));
    std::string uuid = read_sys(sys + "/dm/uuid");
    if (!uuid.empty()) {
      for (char& c : uuid)
        if (c == '/' || c == '\0') c = '_';
      return "dm-" + uuid;
    }
    return "blk-" + std::to_string(major(id.rdev)) + ":" + std::to_string(minor(id.rdev));
  }
  return "file-" + std::to_string(static_cast<unsigned long long>(id.dev)) + "-" +
         std::to_string(static_cast<unsigned long long>(id.ino));
}

Result<std::optional<TargetState>> StateStore::load(const std::string& key) const {
  std::ifstream f(file(key));
  if (!f) {
    if (errno == ENOENT) return std::optional<TargetState>();
    return fail(Errc::kIo, "Couldn't read the receive state '" + file(key) + "': " + std::strerror(errno));
  }
  TargetState s;
  std::string line;
  bool version = false;
  auto bad = [&] {
    return fail(Errc::kBadFormat, "damaged receive state '" + file(key) + "' (remove it, or use --force)");
  };
  while (std::getline(f, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) return bad();
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    auto ident = [&](std::optional<Identity>& out) {
      out = Identity::from_hex(v);
      return out.has_value();
    };
    auto num = [&](auto& out) {
      char* end = nullptr;
      errno = 0;
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (errno || v.empty() || *end) return false;
      out = static_cast<std::remove_reference_t<decltype(out)>>(n);
      return true;
    };
    bool ok = true;
    if (k == "version")
      version = ok = v == "1";
    else if (k == "path")
      s.path = v;
    else if (k == "holds")
      ok = ident(s.holds);
    else if (k == "partial_snap")
      ok = ident(s.partial_snap);
    else if (k == "partial_base") {
      std::optional<Identity> b;
      ok = ident(b);
      if (ok) s.partial_base = *b;
    } else if (k == "partial_flags")
      ok = num(s.partial_flags);
    else if (k == "partial_below")
      ok = num(s.partial_below);
    else if (k == "file_size")
      ok = num(s.file_size);
    else if (k == "file_mtime_ns")
      ok = num(s.file_mtime_ns);
    if (!ok) return bad();
  }
  if (!version) return bad();
  return std::optional<TargetState>(s);
}

Result<> StateStore::save(const std::string& key, const TargetState& s) const {
  THINMETA_CHECK(mkdirs(dir_));
  std::ostringstream o;
  o << "version=1\n";
  o << "path=" << s.path << "\n";
  if (s.holds) o << "holds=" << s.holds->hex() << "\n";
  if (s.partial_snap) {
    o << "partial_snap=" << s.partial_snap->hex() << "\n";
    o << "partial_base=" << s.partial_base.hex() << "\n";
    o << "partial_flags=" << s.partial_flags << "\n";
    o << "partial_below=" << s.partial_below << "\n";
  }
  if (s.file_size || s.file_mtime_ns) {
    o << "file_size=" << s.file_size << "\n";
    o << "file_mtime_ns=" << s.file_mtime_ns << "\n";
  }
  std::string text = o.str();
  std::string tmp = file(key) + ".tmp";
  auto failed = [&](const char* what) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::kIo, std::string("Couldn't ") + what + " the receive state '" + file(key) +
                               "': " + std::strerror(e));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failed("write");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int e = errno;
  ::close(fd);
  errno = e;
  if (!ok) return failed("write");
  if (::rename(tmp.c_str(), file(key).c_str()) != 0) return failed("rename");
  int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return {};
}

Result<> StateStore::remove(const std::string& key) const {
  if (::unlink(file(key).c_str()) != 0 && errno != ENOENT)
    return fail(Errc::kIo, "Couldn't remove the receive state '" + file(key) + "': " + std::strerror(errno));
  return {};
}

Result<std::pair<std::uint64_t, std::uint64_t>> file_stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return fail(Errc::kIo, "Couldn't stat '" + path + "': " + std::strerror(errno));
  std::uint64_t ns = static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                     static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
  return std::make_pair(static_cast<std::uint64_t>(st.st_size), ns);
}

}  // namespace thinmeta::dataplane
