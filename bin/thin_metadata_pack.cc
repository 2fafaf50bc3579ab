// SPDX-License-Identifier: GPL-3.0-or-later
// thin_metadata_pack: a metadata device or image -> a pack file (PACK.md), every block with a
// known checksum compressed. The pack file is written beside its path and renamed when
// complete. Options and messages as 1.3.3 (PACK.md §10); exit status 0 or 1.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <vector>

#include "bin/cli.h"
#include "persistent-data/pack/pack_writer.h"
#include "thin/metadata.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Produces a compressed file of thin metadata.  Packs every block that carries a valid\n"
    "metadata checksum (superblocks, btree nodes, space maps), so the file is a few percent\n"
    "of the device.\n"
    "\n"
    "Usage: thin_metadata_pack [OPTIONS] --input <DEV> --output <FILE>\n"
    "\n"
    "Options:\n"
    "  -f, --force          Force overwrite the output file\n"
    "  -h, --help           Print help\n"
    "  -i, --input <DEV>    Specify thinp metadata binary device/file\n"
    "  -o, --output <FILE>  Specify packed output file\n"
    "  -V, --version        Print version\n";

Result<> write_all(int fd, const std::uint8_t* p, std::size_t len, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fail(Errc::kIo, "Couldn't write output file '" + path + "': " + std::strerror(errno));
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return {};
}

// The extents of a sparse image file that may hold data (SEEK_DATA / SEEK_HOLE), in whole
// blocks; empty (the whole device) for block devices and where the file system cannot say.
std::vector<pdata::pack::Extent> data_extents(const std::string& path) {
  std::vector<pdata::pack::Extent> out;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  const off_t size = st.st_size;
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO) out.clear();  // not supported: read everything
      break;
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    const auto bs = static_cast<off_t>(pdata::kBlockSize);
    out.push_back({static_cast<pdata::BlockAddr>(data / bs),
                   static_cast<pdata::BlockAddr>((hole + bs - 1) / bs)});
    pos = hole;
  }
  ::close(fd);
  if (out.empty()) out.push_back({0, 0});  // all holes: nothing to read
  return out;
}

int thin_metadata_pack_main(int argc, char** argv) {
  return run("thin_metadata_pack", kUsage, [&]() -> int {
    po::options_description opts;
    add_input_output_options(opts);
    opts.add_options()("force,f", "");
    auto vm = parse(normalize_args(argc, argv, {}), opts, {});
    if (help_or_version(vm, kUsage)) return 0;
    const auto [in, out] = input_output(vm);

    auto io = thin::open_input(in, thin::InputOptions{});
    if (!io) return report(io.error());
    if (same_file(in, out))
      return report(Error{Errc::kInvalidArgument, "The input and the output are the same file."});
    if (auto r = confirm_overwrite(out, vm.count("force") > 0); !r) return report(r.error());
    auto file = OutputFile::open(out);
    if (!file) return report(file.error());
    auto stats = pdata::pack::write_pack(
        **io,
        [&](const std::uint8_t* p, std::size_t len) { return write_all(file->fd(), p, len, out); },
        data_extents(in));
    if (!stats) return report(stats.error());
    if (auto r = file->commit(); !r) return report(r.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_metadata_pack, thin_metadata_pack_main);
}  // namespace thinmeta::cli
