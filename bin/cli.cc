// SPDX-License-Identifier: GPL-3.0-or-later
#include "bin/cli.h"

#include "bin/cleanup.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <new>
#include <optional>

#include "persistent-data/io/block.h"
#include "persistent-data/pack/pack_format.h"
#include "thin/superblock.h"

namespace thinmeta::cli {

namespace {
std::map<std::string, ToolMain>& registry() {
  static std::map<std::string, ToolMain> r;
  return r;
}
}  // namespace

ToolRegistration::ToolRegistration(const char* name, ToolMain fn) { registry()[name] = fn; }
const std::map<std::string, ToolMain>& tools() { return registry(); }

int report(const Error& e) {
  if (e.code != Errc::kBrokenPipe) std::cerr << e.what << '\n';
  return 1;
}

std::string usage_text(std::string_view head, std::initializer_list<HelpRow> rows,
                       std::string_view tail) {
  constexpr std::size_t kMaxColumn = 30;  // wider options put their text on the next line
  constexpr std::size_t kWidth = 100;     // the text wraps at words before this column
  std::size_t col = 0;
  for (const auto& r : rows)
    if (r.option.size() <= kMaxColumn) col = std::max(col, r.option.size());
  const std::string indent(2 + col + 2, ' ');
  std::string out(head);
  for (const auto& r : rows) {
    out += "  ";
    out += r.option;
    if (r.option.size() > col) {
      out += "\n" + indent;
    } else {
      out += std::string(col - r.option.size() + 2, ' ');
    }
    std::size_t at = indent.size();
    std::string_view text = r.text;
    bool first = true;
    while (!text.empty()) {
      std::size_t sp = text.find(' ');
      std::string_view word = text.substr(0, sp);
      text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
      if (!first && at + 1 + word.size() > kWidth) {
        out += "\n" + indent;
        at = indent.size();
        first = true;
      }
      if (!first) {
        out += ' ';
        ++at;
      }
      out += word;
      at += word.size();
      first = false;
    }
    out += "\n";
  }
  out += tail;
  return out;
}

UsageError missing_argument(const std::string& name) {
  return UsageError{"the following required arguments were not provided: " + name};
}

void require_file_options(const po::variables_map& vm, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (!vm.count(name) || vm[name].as<std::string>().empty())
      throw missing_argument(std::string("--") + name + " <FILE>");
}

namespace {
constexpr const char* kHelpPointer = "For more information, try '--help'.\n";
}  // namespace

int run(const std::string& tool, const std::string& /*usage*/, const std::function<int()>& body) {
  try {
    return body() == 0 ? 0 : 1;
  } catch (const UsageError& e) {
    if (!e.what.empty()) std::cerr << tool << ": " << e.what << "\n";
    std::cerr << kHelpPointer;
  } catch (const po::unknown_option& e) {
    std::cerr << tool << ": unexpected argument '" << e.get_option_name() << "' found\n"
              << kHelpPointer;
  } catch (const po::error& e) {
    std::cerr << tool << ": " << e.what() << "\n" << kHelpPointer;
  } catch (const std::bad_alloc&) {
    std::cerr << tool << ": out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
  }
  return 1;
}

std::vector<std::string> normalize_args(
    int argc, char** argv, const std::vector<std::pair<char, std::string>>& optional_value_opts) {
  std::vector<std::string> out;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!options_done) {
      if (a == "--") {
        options_done = true;
      } else {
        for (const auto& [short_name, long_name] : optional_value_opts) {
          if (a.size() == 2 && a[0] == '-' && a[1] == short_name) {
            a = "--" + long_name + "=" + kNoValue;
            break;
          }
          if (a.size() >= 2 && a[0] == '-' && a[1] == short_name) {  // -m132
            a = "--" + long_name + "=" + a.substr(2);
            break;
          }
          if (a.size() > 4 && a.rfind("--", 0) == 0 && a.find('=') == std::string::npos &&
              long_name.rfind(a.substr(2), 0) == 0) {
            a = "--" + long_name + "=" + kNoValue;
            break;
          }
        }
      }
    }
    out.push_back(a);
  }
  return out;
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& opts,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  auto style = po::command_line_style::default_style & ~po::command_line_style::allow_sticky;
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).style(style).run(), vm);
  } catch (const po::too_many_positional_options_error&) {
    // Boost does not say which word was too many: parse again with a catch-all to name it.
    po::options_description all;
    all.add(opts);
    all.add_options()("thinmeta-extra", po::value<std::vector<std::string>>(), "");
    po::positional_options_description with_extra = pos;
    with_extra.add("thinmeta-extra", -1);
    po::variables_map again;
    po::store(po::command_line_parser(args).options(all).positional(with_extra).style(style).run(),
              again);
    std::string extra;
    if (again.count("thinmeta-extra"))
      extra = again["thinmeta-extra"].as<std::vector<std::string>>()[0];
    throw UsageError{"unexpected argument '" + extra + "' found"};
  }
  po::notify(vm);
  return vm;
}

bool help_or_version(const po::variables_map& vm, const std::string& usage) {
  if (vm.count("help")) {
    std::cout << usage;
    return true;
  }
  if (vm.count("version")) {
    std::cout << kVersion << "\n";
    return true;
  }
  return false;
}

std::uint64_t parse_u64(const std::string& s, const std::string& what) {
  std::uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size())
    throw UsageError{"Couldn't parse " + what + ": '" + s + "'"};
  return v;
}

std::optional<std::string> input_path(const po::variables_map& vm, const char* key) {
  if (!vm.count(key)) return std::nullopt;
  for (const auto& s : vm[key].as<std::vector<std::string>>())
    if (!s.empty()) return s;
  return std::nullopt;
}

thin::RootSelector root_selector(const po::variables_map& vm) {
  thin::RootSelector root;
  if (!vm.count("metadata-snap")) return root;
  root.snapshot = true;
  const std::string& v = vm["metadata-snap"].as<std::string>();
  if (v != kNoValue) root.snapshot_block = parse_u64(v, "<metadata-snap>");
  return root;
}

void add_input_output_options(po::options_description& opts) {
  opts.add_options()
      ("help,h", "")
      ("version,V", "")
      ("input,i", po::value<std::string>(), "")
      ("output,o", po::value<std::string>(), "");
}

InputOutput input_output(const po::variables_map& vm) {
  require_file_options(vm, {"input", "output"});
  return {vm["input"].as<std::string>(), vm["output"].as<std::string>()};
}

void add_superblock_override_options(po::options_description& opts) {
  opts.add_options()
      ("transaction-id", po::value<std::string>(), "")
      ("data-block-size", po::value<std::string>(), "")
      ("nr-data-blocks", po::value<std::string>(), "");
}

SuperblockOverrides superblock_overrides(const po::variables_map& vm) {
  SuperblockOverrides o;
  if (vm.count("transaction-id"))
    o.trans_id = parse_u64(vm["transaction-id"].as<std::string>(), "transaction id");
  if (vm.count("data-block-size")) {
    std::uint64_t v = parse_u64(vm["data-block-size"].as<std::string>(), "data block size");
    if (v == 0 || v > 0xffffffffull) throw UsageError{"Couldn't parse data block size: '" +
                                                      vm["data-block-size"].as<std::string>() + "'"};
    o.data_block_size = static_cast<std::uint32_t>(v);
  }
  if (vm.count("nr-data-blocks"))
    o.nr_data_blocks = parse_u64(vm["nr-data-blocks"].as<std::string>(), "nr data blocks");
  return o;
}

void require_valid_data_block_size(const SuperblockOverrides& o) {
  if (!o.data_block_size) return;
  std::uint32_t v = *o.data_block_size;
  if (v < thin::kMinDataBlockSize || v > thin::kMaxDataBlockSize || v % thin::kMinDataBlockSize)
    throw UsageError{"invalid --data-block-size " + std::to_string(v) +
                     ": it must be a multiple of 128 sectors between 128 and 2097152"};
}

constexpr std::uint64_t kMinOutputBytes = 40960;  // 1.3.3's floor; the plan checks the rest

Result<> check_output(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return fail(Errc::kNotFound, "Couldn't find output file '" + path + "'");
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return fail(Errc::kInvalidArgument, "Not a block device or regular file '" + path + "'.");
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) < kMinOutputBytes)
    return fail(Errc::kTooSmall, "Output file too small.");
  return {};
}

Result<> confirm_overwrite(const std::string& path, bool force) {
  if (force) return {};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  alignas(8) std::uint8_t block[pdata::kBlockSize];
  ssize_t n = ::pread(fd, block, sizeof block, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof block)) return {};
  auto kind = pdata::pack::packed_kind(block);
  using pdata::pack::PackedKind;
  if (kind != PackedKind::kThinSuperblock && kind != PackedKind::kCacheSuperblock &&
      kind != PackedKind::kEraSuperblock)
    return {};
  std::cerr << "The destination appears to already contain metadata, are you sure? [y/n]: "
            << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  for (char& c : answer) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (answer == "y" || answer == "yes") return {};
  return fail(Errc::kInvalidArgument, "Output file not overwritten");
}

bool same_file(const std::string& a, const std::string& b) { return same_storage(a, b); }

namespace {

std::string errno_text() { return std::strerror(errno); }

// /proc/self/fd/N, /dev/fd/N, /dev/stdout, /dev/stderr: the descriptor N already open here.
std::optional<int> own_descriptor(const std::string& path) {
  if (path == "/dev/stdout") return STDOUT_FILENO;
  if (path == "/dev/stderr") return STDERR_FILENO;
  for (const char* prefix : {"/proc/self/fd/", "/dev/fd/"}) {
    std::string p = prefix;
    if (path.rfind(p, 0) != 0 || path.size() == p.size()) continue;
    int n = 0;
    auto r = std::from_chars(path.data() + p.size(), path.data() + path.size(), n);
    if (r.ec == std::errc() && r.ptr == path.data() + path.size()) return n;
  }
  return std::nullopt;
}

// Follows symlinks (at most 40) to the path the data is written to; a dangling link gives the
// path it points at (the file is created there).
Result<std::string> resolve_links(const std::string& path) {
  std::string cur = path;
  for (int i = 0; i < 40; ++i) {
    struct stat st;
    if (::lstat(cur.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
    std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
    ssize_t n = ::readlink(cur.c_str(), target.data(), target.size());
    if (n < 0) return fail(Errc::kIo, "Couldn't read link '" + cur + "': " + errno_text());
    target.resize(static_cast<std::size_t>(n));
    if (!target.empty() && target[0] != '/') {
      auto slash = cur.rfind('/');
      if (slash != std::string::npos) target = cur.substr(0, slash + 1) + target;
    }
    cur = target;
  }
  return fail(Errc::kInvalidArgument, "Couldn't create output file '" + path +
                                          "': Too many levels of symbolic links");
}

mode_t current_umask() {
  mode_t m = ::umask(022);
  ::umask(m);
  return m;
}

}  // namespace

OutputFile::OutputFile(std::string path, std::string tmp, int fd)
    : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {
  if (!tmp_.empty()) cleanup_slot_ = register_cleanup(tmp_);
}

int OutputOption::fd() const { return file ? file->fd() : STDOUT_FILENO; }

Result<OutputOption> open_output_option(const po::variables_map& vm) {
  OutputOption o;
  if (vm.count("output")) {
    THINMETA_TRY(auto f, OutputFile::open(vm["output"].as<std::string>()));
    o.file.emplace(std::move(f));
  }
  return o;
}

Result<OutputFile> OutputFile::open(const std::string& path) {
  auto cant = [&](const std::string& why) {
    return fail(Errc::kIo, "Couldn't create output file '" + path + "': " + why);
  };
  if (auto n = own_descriptor(path)) {
    int fd = ::fcntl(*n, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return cant(errno_text());
    int fl = ::fcntl(fd, F_GETFL);
    if ((fl & O_ACCMODE) == O_RDONLY) {
      ::close(fd);
      return cant("not open for writing");
    }
    return OutputFile(path, "", fd);
  }
  THINMETA_TRY(std::string target, resolve_links(path));
  struct stat st;
  bool exists = ::stat(target.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return cant("Is a directory");
  if (exists && !S_ISREG(st.st_mode)) {  // a device, a pipe, a socket: in place
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      return fail(Errc::kIo, "Couldn't open output file '" + path + "': " + errno_text());
    return OutputFile(path, "", fd);
  }
  if (exists && st.st_nlink > 1)
    return fail(Errc::kInvalidArgument,
                "Output file '" + path + "' has " + std::to_string(st.st_nlink) +
                    " hard links: replacing it would split them; remove the other links or "
                    "write to another path");
  // In place: a writable file that cannot be replaced (read-only directory, another owner).
  auto in_place = [&]() -> Result<OutputFile> {
    int fd = ::open(target.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return cant(errno_text());
    return OutputFile(target, "", fd);
  };
  std::string tmp = target + ".XXXXXX";
  std::optional<CleanupSignalsHeld> held(std::in_place);  // until the temporary is registered
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    int err = errno;
    held.reset();
    if (exists && (err == EACCES || err == EROFS || err == EPERM)) return in_place();
    errno = err;
    return cant(errno_text());
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  OutputFile out(target, tmp, fd);
  held.reset();
  if (out.cleanup_slot_ < 0) {
    return cant("too many temporary files");
  }
  if (exists) {
    if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
        ::fchown(fd, st.st_uid, st.st_gid) != 0) {
      auto r = in_place();  // out's destructor removes the temporary
      return r;
    }
    ::fchmod(fd, st.st_mode & 07777);
  } else {
    ::fchmod(fd, 0666 & ~current_umask());
  }
  return out;
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : path_(o.path_), tmp_(o.tmp_), fd_(o.fd_), cleanup_slot_(o.cleanup_slot_) {
  o.fd_ = -1;
  o.tmp_.clear();
  o.cleanup_slot_ = -1;
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  unregister_cleanup(cleanup_slot_);
}

Result<> OutputFile::commit() {
  if (fd_ < 0) return {};
  if (!tmp_.empty() && ::fsync(fd_) != 0)
    return fail(Errc::kIo, "Couldn't write output file '" + path_ + "': " + errno_text());
  if (::close(fd_) != 0) {
    fd_ = -1;
    return fail(Errc::kIo, "Couldn't write output file '" + path_ + "': " + errno_text());
  }
  fd_ = -1;
  if (!tmp_.empty()) {
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      return fail(Errc::kIo, "Couldn't create output file '" + path_ + "': " + errno_text());
    tmp_.clear();
    unregister_cleanup(cleanup_slot_);
    cleanup_slot_ = -1;
  }
  return {};
}

namespace {
// (device, inode) of the storage behind a path: a loop device's backing file, else the path.
std::optional<std::pair<dev_t, ino_t>> storage_id(const std::string& path, bool follow_loop) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  if (S_ISBLK(st.st_mode)) {
    if (follow_loop) {
      std::string sys = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" +
                        std::to_string(minor(st.st_rdev)) + "/loop/backing_file";
      int fd = ::open(sys.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        if (n > 0) {
          std::string backing(buf, static_cast<std::size_t>(n));
          while (!backing.empty() && backing.back() == '\n') backing.pop_back();
          if (auto id = storage_id(backing, false)) return id;
        }
      }
    }
    return std::make_pair(dev_t{0}, static_cast<ino_t>(st.st_rdev));
  }
  return std::make_pair(st.st_dev, st.st_ino);
}
}  // namespace

bool same_storage(const std::string& a, const std::string& b) {
  auto x = storage_id(a, true), y = storage_id(b, true);
  if (x && y && *x == *y) return true;
  auto x2 = storage_id(a, false), y2 = storage_id(b, false);
  return x2 && y2 && *x2 == *y2;
}

Result<> lock_output(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return {};
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return {};
  if (errno == EWOULDBLOCK)
    return fail(Errc::kInvalidArgument, "Output file '" + path +
                                            "' is being written by another process");
  return {};  // file systems without flock: as before
}

Result<OutputLock> OutputLock::take(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return OutputLock(-1);  // the open that follows reports it
  OutputLock lock(fd);
  THINMETA_CHECK(lock_output(fd, path));
  return lock;
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace thinmeta::cli
