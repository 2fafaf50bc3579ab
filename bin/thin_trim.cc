// SPDX-License-Identifier: GPL-3.0-or-later
// thin_trim: discard the data blocks of an inactive pool that no thin device uses.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/trim.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_trim [options] --metadata-dev {device|file} --data-dev {device|file}\n"
    "Discards the data blocks that no thin device maps (the pool must be inactive).\n"
    "Options:\n",
    {{"{--metadata-dev} <device|file>", "The pool's metadata device or image"},
     {"{--data-dev} <device|file>", "The pool's data device"},
     {"{-h|--help}", "Print this help and exit"},
     {"{--pool-inactive}", "Accepted for compatibility (the metadata is always opened exclusively)"},
     {"{-q|--quiet}", "Print only the refusal of damaged metadata"},
     {"{-V|--version}", "Print the version and exit"},
     kProgressRow});

// Discards [offset, offset + len) bytes: BLKDISCARD on a block device, a punched hole in a
// regular file (which then reads back as zeroes).
Result<> discard(int fd, bool block_dev, std::uint64_t offset, std::uint64_t len) {
  if (block_dev) {
    std::uint64_t range[2] = {offset, len};
    if (::ioctl(fd, BLKDISCARD, range) != 0)
      return fail(Errc::kIo, std::string("discard ioctl failed: ") + std::strerror(errno));
  } else if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
    return fail(Errc::kIo, std::string("discard (hole punch) failed: ") + std::strerror(errno));
  }
  return {};
}

int thin_trim_main(int argc, char** argv) {
  return run("thin_trim", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("metadata-dev", po::value<std::string>(), "")
        ("data-dev", po::value<std::string>(), "")
        ("pool-inactive", "")
        ("quiet,q", "");
    add_progress_options(opts);
    auto vm = parse(normalize_args(argc, argv, {}), opts, {});
    if (help_or_version(vm, kUsage)) return 0;
    if (!vm.count("metadata-dev")) throw UsageError{"No metadata device provided."};
    if (!vm.count("data-dev")) throw UsageError{"No data device provided."};
    bool quiet = vm.count("quiet") > 0;

    auto md = thin::open_metadata(vm["metadata-dev"].as<std::string>(), {});
    if (!md) return report(md.error());
    Progress progress("thin_trim", progress_wanted(vm));
    progress.stage("checking", pdata::io_counters().blocks_read, md->sb().metadata_sm.nr_allocated);
    auto plan = thin::plan_trim(*md);
    progress.clear();
    if (!plan) {
      if (plan.error().code != Errc::kDamage) return report(plan.error());
      if (!quiet) std::cerr << plan.error().what << "\n";
      std::cerr << "metadata contains errors (run thin_check for details).\n"
                   "perhaps you need to run thin_repair.\n";
      return 1;
    }

    const std::string data_path = vm["data-dev"].as<std::string>();
    int fd = ::open(data_path.c_str(), O_WRONLY | O_CLOEXEC | O_EXCL);
    if (fd < 0) fd = ::open(data_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      std::cerr << "Couldn't open data device '" << data_path << "': " << std::strerror(errno)
                << "\n";
      return 1;
    }
    struct stat st;
    std::uint64_t size = 0;
    bool block_dev = ::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
    if (block_dev) {
      if (::ioctl(fd, BLKGETSIZE64, &size) != 0) size = 0;
    } else if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      size = static_cast<std::uint64_t>(st.st_size);
    } else {
      ::close(fd);
      std::cerr << "Not a block device or regular file '" << data_path << "'.\n";
      return 1;
    }
    const std::uint64_t block_bytes = std::uint64_t{plan->data_block_size} * 512;
    const std::uint64_t wanted = plan->nr_data_blocks * block_bytes;
    if (size < wanted) {
      ::close(fd);
      std::cerr << "unexpected data device size, wanted " << wanted << " bytes\n";
      return 1;
    }
    if (plan->free_ranges.empty() && !quiet)
      std::cerr << "All data blocks allocated, nothing to discard\n";
    for (const auto& [b, e] : plan->free_ranges) {
      if (auto r = discard(fd, block_dev, b * block_bytes, (e - b) * block_bytes); !r) {
        ::close(fd);
        return report(r.error());
      }
    }
    if (::fsync(fd) != 0 && !block_dev) {
      std::cerr << "Couldn't sync data device '" << data_path << "': " << std::strerror(errno) << "\n";
      ::close(fd);
      return 1;
    }
    ::close(fd);
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_trim, thin_trim_main);
}  // namespace thinmeta::cli
