// SPDX-License-Identifier: GPL-3.0-or-later
#include "bin/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <new>

#include "persistent-data/io/block.h"
#include "persistent-data/pack/pack_format.h"

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

int run(const std::string& tool, const std::string& usage, const std::function<int()>& body) {
  try {
    return body() == 0 ? 0 : 1;
  } catch (const UsageError& e) {
    if (!e.what.empty()) std::cerr << e.what << "\n";
    std::cerr << usage;
  } catch (const po::error& e) {
    std::cerr << tool << ": " << e.what() << "\n" << usage;
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
  po::store(po::command_line_parser(args).options(opts).positional(pos).style(style).run(), vm);
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

std::optional<std::uint64_t> snapshot_block(const std::string& v) {
  if (v == kNoValue) return std::nullopt;
  return parse_u64(v, "<metadata-snap>");
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

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode)) return sa.st_rdev == sb.st_rdev;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

Result<OutputFile> OutputFile::open(const std::string& path) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode))
      return fail(Errc::kInvalidArgument, "Couldn't create output file '" + path +
                                              "': Is a directory");
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      return fail(Errc::kIo, "Couldn't open output file '" + path + "': " + std::strerror(errno));
    return OutputFile(path, "", fd);
  }
  std::string tmp = path + ".XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    return fail(Errc::kIo, "Couldn't create output file '" + path + "': " + std::strerror(errno));
  ::fchmod(fd, exists ? (st.st_mode & 07777) : 0644);
  return OutputFile(path, tmp, fd);
}

OutputFile::OutputFile(OutputFile&& o) noexcept : path_(o.path_), tmp_(o.tmp_), fd_(o.fd_) {
  o.fd_ = -1;
  o.tmp_.clear();
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Result<> OutputFile::commit() {
  if (fd_ < 0) return {};
  if (!tmp_.empty() && ::fsync(fd_) != 0)
    return fail(Errc::kIo, "Couldn't write output file '" + path_ + "': " + std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    return fail(Errc::kIo, "Couldn't write output file '" + path_ + "': " + std::strerror(errno));
  }
  fd_ = -1;
  if (!tmp_.empty()) {
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      return fail(Errc::kIo, "Couldn't create output file '" + path_ + "': " +
                                 std::strerror(errno));
    tmp_.clear();
  }
  return {};
}

}  // namespace thinmeta::cli
