// SPDX-License-Identifier: GPL-3.0-or-later
// thin_send: a thin device (full) or what differs between two of a pool (incremental), as a
// checksummed stream (data-plane/STREAM.md) for thin_receive. Device paths are resolved through
// the device-mapper tables and read from a held metadata snapshot; the low-level form reads
// image files (--metadata-dev, --data-dev, --size).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "data-plane/send.h"
#include "dm/snap_hold.h"
#include "dm/thin_device.h"
#include "persistent-data/io/io_engine.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Usage: thin_send [options] [BASE] SNAP\n"
    "       thin_send [options] --metadata-dev {device|file} --data-dev {device|file}\n"
    "                 [--snap1 <dev-id>] --snap2 <dev-id> --size <sectors>\n"
    "Writes a stream of thin device SNAP (full), or of what a reader of SNAP sees differently\n"
    "from a reader of BASE (incremental), for thin_receive.\n"
    "Options:\n"
    "  {-o|--output} <file>           write the stream to a file instead of stdout\n"
    "  {-n|--dry-run}                 print what the stream would carry, read no data\n"
    "  {--mapped-only}                provisioned ranges only, no unmap records\n"
    "  {--resume} <token>             finish an interrupted transfer (token from thin_receive)\n"
    "  {--buffer-size-meg} <MiB>      data read ahead at most (default 16)\n"
    "  {-v|--verbose}                 progress and a summary on stderr\n"
    "  {--progress|--no-progress}     progress on stderr even off a terminal, or never\n"
    "  {--metadata-dev} <file>        low-level form: pool metadata (image or device)\n"
    "  {--data-dev} <file>            low-level form: pool data device\n"
    "  {-m|--metadata-snap} [block#]  low-level form: read the held metadata snapshot\n"
    "  {--snap1} <dev-id>             low-level form: BASE's thin id\n"
    "  {--snap2} <dev-id>             low-level form: SNAP's thin id\n"
    "  {--size} <sectors>             low-level form: SNAP's size\n"
    "  {-h|--help}                    print this help and exit\n"
    "  {-V|--version}                 print the version and exit\n";

// What is read: metadata opened at the right root, the data device, the request.
struct Source {
  std::optional<thin::Metadata> md;
  std::unique_ptr<dataplane::DataDevice> data;
  dataplane::SendRequest req;
  // Device form: the hold released after the stream (also on signals: snap_hold.h).
  std::optional<dm::Control> ctl;
  std::unique_ptr<dm::MetadataSnapHold> hold;
};

void low_level(const po::variables_map& vm, Source& s) {
  if (!vm.count("metadata-dev")) throw UsageError{"No metadata device provided."};
  if (!vm.count("snap2")) throw UsageError{"--snap2 not specified."};
  if (!vm.count("size")) throw UsageError{"--size not specified (a thin device's size is not in the metadata)."};
  s.req.snap_id = parse_u64(vm["snap2"].as<std::string>(), "thin id");
  if (vm.count("snap1")) s.req.base_id = parse_u64(vm["snap1"].as<std::string>(), "thin id");
  std::uint64_t sectors = parse_u64(vm["size"].as<std::string>(), "size");
  if (sectors == 0 || sectors > (~0ull >> 9)) throw UsageError{"--size must be a positive number of sectors"};
  s.req.size_bytes = sectors * 512;
  const thin::RootSelector root = root_selector(vm);
  thin::InputOptions in;
  if (root.snapshot) in.exclusive = false;  // the pool is live: the kernel holds its metadata device
  auto md = thin::open_metadata(vm["metadata-dev"].as<std::string>(), root, in);
  if (!md) throw std::runtime_error(md.error().what);
  s.md.emplace(std::move(*md));
  if (vm.count("data-dev")) {
    auto d = dataplane::DataDevice::open(vm["data-dev"].as<std::string>(), {});
    if (!d) throw std::runtime_error(d.error().what);
    s.data = std::move(*d);
  } else if (!vm.count("dry-run")) {
    throw UsageError{"No data device provided."};
  }
}

void device_form(const std::vector<std::string>& paths, bool dry_run, Source& s) {
  auto ctl = dm::Control::open();
  if (!ctl) throw std::runtime_error(ctl.error().what);
  s.ctl.emplace(std::move(*ctl));
  auto snap = dm::resolve_thin(*s.ctl, paths.back());
  if (!snap) throw std::runtime_error(snap.error().what);
  std::vector<std::uint32_t> ids{snap->thin_id};
  if (paths.size() == 2) {
    auto base = dm::resolve_thin(*s.ctl, paths[0]);
    if (!base) throw std::runtime_error(base.error().what);
    if (base->pool.dev != snap->pool.dev)
      throw std::runtime_error("'" + paths[0] + "' and '" + paths[1] +
                               "' are not thin devices of the same pool");
    s.req.base_id = base->thin_id;
    ids.push_back(base->thin_id);
  }
  if (snap->origin_dev && !s.req.mapped_only)
    throw std::runtime_error("'" + paths.back() + "' has an external origin: its unprovisioned "
                             "ranges read from the origin, which thin_send does not stream; use "
                             "--mapped-only (the stream then carries its provisioned ranges only)");
  s.req.snap_id = snap->thin_id;
  s.req.size_bytes = snap->size_sectors * 512;
  auto hold = dm::MetadataSnapHold::acquire(*s.ctl, snap->pool.name);
  if (!hold) throw std::runtime_error(hold.error().what);
  s.hold = std::move(*hold);
  thin::InputOptions in;
  in.exclusive = false;
  auto md = thin::open_metadata(snap->pool.metadata_path, thin::RootSelector{true, s.hold->root()}, in);
  if (!md) throw std::runtime_error(md.error().what);
  if (auto ok = dm::check_snapshot_has(*md, ids); !ok) throw std::runtime_error(ok.error().what);
  s.md.emplace(std::move(*md));
  if (!dry_run) {
    auto d = dataplane::DataDevice::open(snap->pool.data_path, {});
    if (!d) throw std::runtime_error(d.error().what);
    s.data = std::move(*d);
  }
}

std::string plural(std::uint64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

int thin_send_main(int argc, char** argv) {
  return run("thin_send", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("output,o", po::value<std::string>(), "")
        ("dry-run,n", "")
        ("mapped-only", "")
        ("resume", po::value<std::string>(), "")
        ("buffer-size-meg", po::value<std::string>(), "")
        ("verbose,v", "")
        ("metadata-dev", po::value<std::string>(), "")
        ("data-dev", po::value<std::string>(), "")
        ("metadata-snap", po::value<std::string>(), "")
        ("snap1", po::value<std::string>(), "")
        ("snap2", po::value<std::string>(), "")
        ("size", po::value<std::string>(), "")
        ("input", po::value<std::vector<std::string>>(), "");
    add_progress_options(opts);
    po::positional_options_description pos;
    pos.add("input", -1);
    auto vm = parse(normalize_args(argc, argv, {{'m', "metadata-snap"}}), opts, pos);
    if (help_or_version(vm, kUsage)) return 0;

    bool dry_run = vm.count("dry-run") > 0;
    bool verbose = vm.count("verbose") > 0;
    std::vector<std::string> paths;
    if (vm.count("input"))
      for (const auto& p : vm["input"].as<std::vector<std::string>>())
        if (!p.empty()) paths.push_back(p);

    Source s;
    s.req.mapped_only = vm.count("mapped-only") > 0;
    if (vm.count("resume")) {
      auto t = dataplane::ResumeToken::decode(vm["resume"].as<std::string>());
      if (!t) throw UsageError{t.error().what};
      s.req.resume = *t;
    }
    if (vm.count("buffer-size-meg")) {
      std::uint64_t mb = parse_u64(vm["buffer-size-meg"].as<std::string>(), "buffer size");
      if (mb < 1 || mb > 65536) throw UsageError{"--buffer-size-meg must be between 1 and 65536"};
      s.req.copier.buffer_bytes = mb << 20;
      s.req.copier.max_request_bytes = std::min<std::size_t>(s.req.copier.max_request_bytes, (mb << 20) / 2);
    }
    s.req.copier.engine = pdata::engine_from_env();
    bool low = vm.count("metadata-dev") || vm.count("data-dev") || vm.count("snap2");
    if (low) {
      if (!paths.empty()) throw UsageError{"device paths and --metadata-dev/--snap2 exclude each other"};
      low_level(vm, s);
    } else {
      if (paths.empty()) throw UsageError{"No thin device given."};
      if (paths.size() > 2) throw UsageError{"Too many devices given (BASE and SNAP at most)."};
      device_form(paths, dry_run, s);
    }

    if (dry_run) {
      auto st = dataplane::plan_stream(*s.md, s.req);
      if (!st) return report(st.error());
      std::cout << "data: " << st->data_bytes << " bytes in " << plural(st->data_ranges, "range") << "\n"
                << "unmap: " << st->zero_bytes << " bytes in " << plural(st->zero_ranges, "range") << "\n";
      std::cout.flush();
      if (!std::cout) return report(Error{Errc::kIo, "write to stdout failed"});
      if (s.hold) {
        if (auto ok = s.hold->release(); !ok) return report(ok.error());
      }
      return 0;
    }

    auto output = open_output_option(vm);
    if (!output) return report(output.error());
    std::optional<OutputFile>& file = output->file;
    const int fd = output->fd();
    if (!file && ::isatty(STDOUT_FILENO)) {
      throw UsageError{"refusing to write a binary stream to a terminal (redirect stdout or use -o)"};
    }

    // A pipe of 1 MiB (the default maximum) instead of 64 KiB: a sixteenth of the wake-ups
    // between thin_send and thin_receive. Fails harmlessly on anything but a pipe.
    (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    bool show = progress_wanted(vm) || (verbose && !vm.count("no-progress"));
    std::uint64_t total = 0;
    if (show) {
      auto st = dataplane::plan_stream(*s.md, s.req);
      if (!st) return report(st.error());
      total = st->data_bytes;
    }
    std::atomic<std::uint64_t> done{0};
    auto t0 = std::chrono::steady_clock::now();
    Result<dataplane::SendStats> st;
    {
      Progress progress("thin_send", show);
      progress.stage("sending", done, total);
      st = dataplane::send_stream(*s.md, *s.data, s.req, fd, &done);
    }
    if (!st) return report(st.error());
    if (file) {
      if (auto ok = file->commit(); !ok) return report(ok.error());
    }
    if (s.hold) {
      if (auto ok = s.hold->release(); !ok) return report(ok.error());
    }
    if (verbose) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char rate[64];
      std::snprintf(rate, sizeof rate, "%.1f", secs > 0 ? static_cast<double>(st->data_bytes) / 1e6 / secs : 0.0);
      std::cerr << "thin_send: " << st->data_bytes << " bytes of data in "
                << plural(st->data_ranges, "range") << ", " << st->zero_bytes << " bytes to unmap in "
                << plural(st->zero_ranges, "range") << "; stream " << st->stream_bytes << " bytes, "
                << rate << " MB/s\n";
    }
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_send, thin_send_main);
}  // namespace thinmeta::cli
