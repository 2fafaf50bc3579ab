// SPDX-License-Identifier: GPL-3.0-or-later
// thin_receive: applies a thin_send stream from stdin to a block device or a file.
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "data-plane/receive.h"
#include "dm/thin_device.h"
#include "persistent-data/io/io_engine.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Usage: thin_receive [options] TARGET\n"
    "Applies a thin_send stream read from stdin to TARGET (a block device or a file; a missing\n"
    "file is created).\n"
    "Options:\n"
    "  {-n|--dry-run}                verify the stream and its base, write nothing\n"
    "  {-f|--force}                  apply an incremental stream whatever TARGET is recorded to hold\n"
    "  {--state-dir} <dir>           where what TARGET holds is recorded\n"
    "                                (default $THINMETA_RECEIVE_STATE_DIR or /var/lib/thinmeta/receive)\n"
    "  {--buffer-size-meg} <MiB>     writes in flight at most (default 16)\n"
    "  {-v|--verbose}                progress and a summary on stderr\n"
    "  {--progress|--no-progress}    progress on stderr even off a terminal, or never\n"
    "  {-h|--help}                   print this help and exit\n"
    "  {-V|--version}                print the version and exit\n";

volatile std::sig_atomic_t g_stop = 0;
extern "C" void receive_on_signal(int) { g_stop = 1; }

// SIGINT/SIGTERM/SIGHUP end the receive at the next record, as an interrupted transfer (state
// recorded, resume token printed). No SA_RESTART: a blocked read of stdin returns.
void catch_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = receive_on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

// A dm-thin device without an external origin, over a pool that does not ignore discards,
// reads every whole discarded block as zeros: its block size; else 0.
std::uint64_t thin_discard_block(const std::string& target) {
  struct stat st;
  if (::stat(target.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return 0;
  auto ctl = dm::Control::open();
  if (!ctl) return 0;
  auto thin = dm::resolve_thin(*ctl, target);
  if (!thin || thin->origin_dev) return 0;
  const auto& f = thin->pool.features;
  if (std::find(f.begin(), f.end(), "ignore_discard") != f.end()) return 0;
  return thin->pool.block_size_bytes();
}

int thin_receive_main(int argc, char** argv) {
  return run("thin_receive", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("dry-run,n", "")
        ("force,f", "")
        ("state-dir", po::value<std::string>(), "")
        ("buffer-size-meg", po::value<std::string>(), "")
        ("verbose,v", "")
        ("input", po::value<std::vector<std::string>>(), "");
    add_progress_options(opts);
    po::positional_options_description pos;
    pos.add("input", -1);
    auto vm = parse(normalize_args(argc, argv, {}), opts, pos);
    if (help_or_version(vm, kUsage)) return 0;

    std::vector<std::string> paths;
    if (vm.count("input"))
      for (const auto& p : vm["input"].as<std::vector<std::string>>())
        if (!p.empty()) paths.push_back(p);
    if (paths.empty()) throw UsageError{"No target given."};
    if (paths.size() > 1) throw UsageError{"Only one target may be given."};
    if (::isatty(STDIN_FILENO))
      throw UsageError{"stdin is a terminal: pipe a thin_send stream into thin_receive"};

    dataplane::ReceiveOptions o;
    o.target = paths[0];
    o.dry_run = vm.count("dry-run") > 0;
    o.force = vm.count("force") > 0;
    if (vm.count("state-dir")) o.state_dir = vm["state-dir"].as<std::string>();
    if (vm.count("buffer-size-meg")) {
      std::uint64_t mb = parse_u64(vm["buffer-size-meg"].as<std::string>(), "buffer size");
      if (mb < 1 || mb > 65536) throw UsageError{"--buffer-size-meg must be between 1 and 65536"};
      o.copier.buffer_bytes = mb << 20;
      o.copier.max_request_bytes = std::min<std::size_t>(o.copier.max_request_bytes, (mb << 20) / 2);
    }
    o.copier.engine = pdata::engine_from_env();
    o.discard_block_bytes = o.dry_run ? 0 : thin_discard_block(o.target);
    // A pipe of 1 MiB (the default maximum) instead of 64 KiB: a sixteenth of the wake-ups
    // between thin_send and thin_receive. Fails harmlessly on anything but a pipe.
    (void)::fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
    o.stop = &g_stop;
    catch_signals();

    bool verbose = vm.count("verbose") > 0;
    bool show = progress_wanted(vm) || (verbose && !vm.count("no-progress"));
    std::atomic<std::uint64_t> done{0};
    std::expected<dataplane::ReceiveResult, dataplane::ReceiveFailure> r;
    {
      Progress progress("thin_receive", show);
      progress.stage("receiving (stream bytes)", done, 0);
      r = dataplane::receive_stream(o, STDIN_FILENO, &done);
    }
    if (!r) {
      report(r.error().error);
      if (r.error().resume_token) std::cerr << "resume token: " << *r.error().resume_token << "\n";
      return 1;
    }
    const auto& c = r->counts;
    if (o.dry_run) {
      std::cout << "would write " << c.data_bytes << " bytes of data and zero " << c.zero_bytes
                << " bytes of '" << o.target << "' (" << (r->header.incremental() ? "incremental" : "full")
                << " stream of " << r->header.snap.describe() << ", " << r->stream_bytes << " bytes)\n";
      std::cout.flush();
      if (!std::cout) return report(Error{Errc::kIo, "write to stdout failed"});
    } else if (verbose) {
      std::cerr << "thin_receive: wrote " << c.data_bytes << " bytes of data, zeroed " << c.zero_bytes
                << " bytes of '" << o.target << "' (stream " << r->stream_bytes << " bytes)\n";
    }
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_receive, thin_receive_main);
}  // namespace thinmeta::cli
