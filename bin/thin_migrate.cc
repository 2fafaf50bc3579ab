// SPDX-License-Identifier: GPL-3.0-or-later
// thin_migrate: copy a thin device of a live pool, read straight from the pool's data device
// at the mapped blocks of a metadata snapshot, onto a block device or a file; with --delta-id,
// only what differs from another thin device whose content the destination holds.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "data-plane/data_device.h"
#include "data-plane/thin_copy.h"
#include "dm/control.h"
#include "dm/dev_node.h"
#include "dm/snap_hold.h"
#include "dm/thin_device.h"
#include "thin/metadata.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_migrate [options] --source-dev {device} --dest-dev {device}\n"
    "       thin_migrate [options] --source-dev {device} --dest-file {file}\n"
    "Copies a read-only thin device of a live pool onto a device or a file.\n"
    "Options:\n",
    {{"{--source-dev} <device>", "The read-only thin device to copy"},
     {"{--dest-dev} <device>", "The destination block device (at least as large as the source)"},
     {"{--dest-file} <file>", "The destination file (created if missing, sized to the source)"},
     {"{-h|--help}", "Print this help and exit"},
     {"{-q|--quiet}", "Print nothing but errors"},
     {"{-V|--version}", "Print the version and exit"},
     {"{--buffer-size-meg} <MB>", "Memory for the copy buffers, in MiB (default 64)"},
     {"{--delta-id} <THIN_ID>", "Copy only what differs from thin device THIN_ID"},
     {"{--zero-dest}", "Accepted for compatibility (unmapped ranges always read as zeros)"},
     kProgressRow});

struct Options {
  std::string source;
  std::string dest;
  bool dest_is_file = false;
  std::optional<std::uint32_t> delta_id;
  std::uint64_t buffer_bytes = 64ull << 20;
  bool quiet = false;
  bool progress = false;
};

// The destination: an existing block device (exclusive: not mounted, not under a table), or a
// regular file created or resized to `size`.
Result<std::unique_ptr<dataplane::DataDevice>> open_dest(const Options& o, std::uint64_t size) {
  struct stat st;
  bool exists = ::stat(o.dest.c_str(), &st) == 0;
  dataplane::DeviceOptions d;
  d.writable = true;
  if (!o.dest_is_file) {
    if (!exists) return fail(Errc::kNotFound, "Couldn't find output device '" + o.dest + "'");
    if (!S_ISBLK(st.st_mode))
      return fail(Errc::kInvalidArgument, "'" + o.dest + "' is not a block device");
    d.exclusive = true;
    return dataplane::DataDevice::open(o.dest, d);
  }
  if (exists && !S_ISREG(st.st_mode))
    return fail(Errc::kInvalidArgument, "'" + o.dest + "' is not a regular file");
  d.create_size = size;
  THINMETA_TRY(auto dev, dataplane::DataDevice::open(o.dest, d));
  if (dev->size_bytes() != size) THINMETA_CHECK(dev->truncate(size));
  return dev;
}

// Whole blocks of this size read as zeros after a discard on `dev`: a dm-thin device without an
// external origin, in a pool that passes discards to thin devices. 0 otherwise.
std::uint64_t discard_zeroes(const dm::Control& ctl, const std::string& dev) {
  auto t = dm::resolve_thin(ctl, dev);
  if (!t || t->origin_dev) return 0;
  if (std::find(t->pool.features.begin(), t->pool.features.end(), "ignore_discard") !=
      t->pool.features.end())
    return 0;
  return t->pool.block_size_bytes();
}

Result<> migrate(const Options& o) {
  THINMETA_CHECK(dm::block_device_number(o.source));
  THINMETA_TRY(auto ctl, dm::Control::open());
  THINMETA_TRY(dm::ThinDevice src, dm::resolve_thin(ctl, o.source));
  if (!src.read_only)
    return fail(Errc::kInvalidArgument, "'" + o.source +
                                            "' is not a read-only device (activate it read-only: "
                                            "lvchange -pr, dmsetup --readonly)");
  const std::uint64_t size = src.size_sectors * 512;
  THINMETA_TRY(auto dest, open_dest(o, size));
  if (dest->size_bytes() < size)
    return fail(Errc::kInvalidArgument,
                "destination '" + o.dest + "' is too small: " + std::to_string(dest->size_bytes()) +
                    " bytes, the source has " + std::to_string(size));
  std::unique_ptr<dataplane::DataDevice> origin;
  if (src.origin_dev) {
    THINMETA_TRY(origin, dataplane::DataDevice::open(src.origin_path, {}));
  }
  THINMETA_TRY(auto data, dataplane::DataDevice::open(src.pool.data_path, {}));
  if (data->size_bytes() < src.pool.nr_data_blocks() * src.pool.block_size_bytes())
    return fail(Errc::kInvalidArgument,
                "data device '" + src.pool.data_path + "' is shorter than the pool");

  THINMETA_TRY(auto hold, dm::MetadataSnapHold::acquire(ctl, src.pool.name));
  thin::InputOptions in;
  in.exclusive = false;
  THINMETA_TRY(auto md, thin::open_metadata(src.pool.metadata_path,
                                            thin::RootSelector{true, hold->root()}, in));
  std::vector<std::uint32_t> ids{src.thin_id};
  if (o.delta_id) ids.push_back(*o.delta_id);
  THINMETA_CHECK(dm::check_snapshot_has(md, ids));

  dataplane::ThinCopyOptions c;
  c.block_bytes = src.pool.block_size_bytes();
  c.size_bytes = size;
  c.snap_id = src.thin_id;
  if (o.delta_id) c.base_id = *o.delta_id;
  c.origin = origin.get();
  c.zero_unprovisioned = !(dest->created() && !o.delta_id);
  c.dest_discard_block_bytes = o.dest_is_file ? 0 : discard_zeroes(ctl, o.dest);
  c.copier.buffer_bytes = static_cast<std::size_t>(o.buffer_bytes);
  c.copier.max_request_bytes =
      std::min<std::size_t>(c.copier.max_request_bytes, o.buffer_bytes / 4);
  c.copier.engine = pdata::engine_from_env();
  std::atomic<std::uint64_t> done{0};
  c.done_below = &done;
  Progress progress("thin_migrate", o.progress);
  progress.stage(o.delta_id ? "copying the delta" : "copying", done, size);
  THINMETA_TRY(auto stats, dataplane::copy_thin(md.io(), md.mapping_root(), *data, *dest, c));
  THINMETA_CHECK(hold->release());
  THINMETA_CHECK(dest->sync());
  (void)stats;
  return {};
}

int thin_migrate_main(int argc, char** argv) {
  return run("thin_migrate", kUsage, [&]() -> int {
    po::options_description opts;
    // clang-format off
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("quiet,q", "")
        ("source-dev", po::value<std::string>(), "")
        ("dest-dev", po::value<std::string>(), "")
        ("dest-file", po::value<std::string>(), "")
        ("buffer-size-meg", po::value<std::string>(), "")
        ("delta-id", po::value<std::string>(), "")
        ("zero-dest", "");
    // clang-format on
    add_progress_options(opts);
    auto vm = parse(normalize_args(argc, argv, {}), opts, {});
    if (help_or_version(vm, kUsage)) return 0;
    Options o;
    o.quiet = vm.count("quiet") > 0;
    o.progress = !o.quiet && progress_wanted(vm);
    if (!vm.count("source-dev")) throw UsageError{"You must specify a source"};
    o.source = vm["source-dev"].as<std::string>();
    if (vm.count("dest-dev") && vm.count("dest-file"))
      throw UsageError{"--dest-dev and --dest-file cannot be used together"};
    if (vm.count("dest-dev")) {
      o.dest = vm["dest-dev"].as<std::string>();
    } else if (vm.count("dest-file")) {
      o.dest = vm["dest-file"].as<std::string>();
      o.dest_is_file = true;
    } else {
      throw UsageError{"You must specify a dest"};
    }
    if (vm.count("buffer-size-meg")) {
      std::uint64_t mb = parse_u64(vm["buffer-size-meg"].as<std::string>(), "buffer size");
      if (mb == 0 || mb > (1u << 20)) throw UsageError{"buffer size must be 1 to 1048576 MiB"};
      o.buffer_bytes = mb << 20;
    }
    if (vm.count("delta-id")) {
      std::uint64_t id = parse_u64(vm["delta-id"].as<std::string>(), "thin id");
      if (id >= (1u << 24))
        throw UsageError{"Couldn't parse thin id: '" + vm["delta-id"].as<std::string>() + "'"};
      o.delta_id = static_cast<std::uint32_t>(id);
    }
    if (auto r = migrate(o); !r) return report(r.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_migrate, thin_migrate_main);
}  // namespace thinmeta::cli
