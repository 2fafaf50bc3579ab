// SPDX-License-Identifier: GPL-3.0-or-later
// thin_metadata_unpack: a pack file (PACK.md) -> metadata on a file or block device. The
// header is checked before the output is touched; the output's superblock is zeroed first
// and written last; a file is made exactly nr_blocks x 4096 bytes and on a device every block
// the pack does not cover is zeroed, so both read back the same bytes. Exit status 0 or 1.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "bin/cli.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/pack/unpacker.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Unpack a compressed file of thin metadata.  The output is a file (created or truncated\n"
    "to the packed size) or a block device (at least that size; blocks not in the pack are\n"
    "zeroed, blocks beyond it are left alone).\n"
    "\n"
    "Usage: thin_metadata_unpack [OPTIONS] --input <FILE> --output <DEV>\n"
    "\n"
    "Options:\n"
    "  -f, --force         Force overwrite the output file\n"
    "  -h, --help          Print help\n"
    "  -i, --input <FILE>  Specify packed input file\n"
    "  -o, --output <DEV>  Specify thinp metadata binary device/file\n"
    "  -V, --version       Print version\n";

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

// Zeroes [b, e) of a block device: BLKZEROOUT, else zero blocks written through the engine.
Result<> zero_device(int fd, pdata::IoEngine& io, pdata::BlockAddr b, pdata::BlockAddr e) {
  std::uint64_t range[2] = {b * pdata::kBlockSize, (e - b) * pdata::kBlockSize};
  if (::ioctl(fd, BLKZEROOUT, range) == 0) return {};
  constexpr std::size_t kBatch = 256;
  pdata::AlignedBuffer zeros(kBatch);
  std::vector<pdata::BlockAddr> addrs;
  for (; b < e; b += addrs.size()) {
    addrs.clear();
    for (pdata::BlockAddr a = b; a < e && addrs.size() < kBatch; ++a) addrs.push_back(a);
    THINMETA_CHECK(io.write_many(addrs, zeros.data()));
  }
  return {};
}

int thin_metadata_unpack_main(int argc, char** argv) {
  return run("thin_metadata_unpack", kUsage, [&]() -> int {
    po::options_description opts;
    add_input_output_options(opts);
    opts.add_options()
        ("force,f", "")
        ("io-engine", po::value<std::string>(), "");  // 1.3.3 accepts and ignores it
    auto vm = parse(normalize_args(argc, argv, {}), opts, {});
    if (help_or_version(vm, kUsage)) return 0;
    const auto [in, out] = input_output(vm);

    struct stat st;
    if (::stat(in.c_str(), &st) != 0)
      return report({Errc::kNotFound, "Couldn't find input file '" + in + "'"});
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      return report({Errc::kInvalidArgument, "Not a block device or regular file '" + in + "'."});
    int in_fd = ::open(in.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) return report({Errc::kIo, errno_text("Couldn't open input file", in)});
    std::uint64_t in_size = static_cast<std::uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(in_fd, BLKGETSIZE64, &in_size) != 0) in_size = 0;
    auto header = pdata::pack::read_header(in_fd);
    if (!header) {
      ::close(in_fd);
      return report(header.error());
    }
    const std::uint64_t out_bytes = header->nr_blocks * pdata::kBlockSize;

    auto refuse = [&](Error e) {
      ::close(in_fd);
      return report(e);
    };
    struct stat ost;
    bool exists = ::stat(out.c_str(), &ost) == 0;
    if (exists && S_ISDIR(ost.st_mode))
      return refuse(
          {Errc::kInvalidArgument, "Couldn't open output file '" + out + "': Is a directory"});
    if (exists && !S_ISREG(ost.st_mode) && !S_ISBLK(ost.st_mode))
      return refuse({Errc::kInvalidArgument, "Not a block device or regular file '" + out + "'."});
    if (same_file(in, out))
      return refuse({Errc::kInvalidArgument, "The input and the output are the same file."});
    if (auto r = confirm_overwrite(out, vm.count("force") > 0); !r) return refuse(r.error());

    const bool device = exists && S_ISBLK(ost.st_mode);
    if (!device) {  // a file is made exactly the packed size, all holes (zeros)
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) return refuse({Errc::kIo, errno_text("Couldn't open output file", out)});
      bool ok = ::ftruncate(fd, 0) == 0 && ::ftruncate(fd, static_cast<off_t>(out_bytes)) == 0;
      std::string err = ok ? "" : errno_text("Couldn't size output file", out);
      ::close(fd);
      if (!ok) return refuse({Errc::kIo, err});
    }
    pdata::OpenOptions oo;
    oo.writable = true;
    oo.exclusive = true;
    auto io = pdata::open_engine(out, oo);
    if (!io) return refuse(io.error());
    if ((*io)->nr_blocks() < header->nr_blocks)
      return refuse({Errc::kTooSmall, "Output device '" + out + "' is too small: the pack holds " +
                                          std::to_string(header->nr_blocks) +
                                          " blocks of 4096 bytes, the device " +
                                          std::to_string((*io)->nr_blocks())});
    int zero_fd = device ? ::open(out.c_str(), O_WRONLY | O_CLOEXEC) : -1;
    if (device && zero_fd < 0)
      return refuse({Errc::kIo, errno_text("Couldn't open output file", out)});
    pdata::pack::ZeroRange zero;
    if (device)
      zero = [&](pdata::BlockAddr b, pdata::BlockAddr e) {
        return zero_device(zero_fd, **io, b, e);
      };
    auto stats = pdata::pack::unpack(in_fd, in_size, *header, **io, zero);
    if (zero_fd >= 0) ::close(zero_fd);
    ::close(in_fd);
    if (!stats) return report(stats.error());
    for (const auto& w : stats->warnings) std::cerr << "Warning: " << w << "\n";
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_metadata_unpack, thin_metadata_unpack_main);
}  // namespace thinmeta::cli
