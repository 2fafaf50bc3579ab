// SPDX-License-Identifier: GPL-3.0-or-later
// thin_check: check thin-pool metadata; what lvm2 runs at every pool activation (REFERENCE-
// TOOLS.md §1.1, §4). Exit 0 when clean, 1 otherwise; never 2 (lvm2 reads 2 as "not installed").
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/check/check.h"
#include "thin/check/repair_leaks.h"
#include "thin/metadata.h"
#include "thin/superblock.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_check [options] {device|file}\n"
    "Checks thin-pool metadata: every tree and both space maps.\n"
    "Options:\n",
    {{"{-q|--quiet}", "Print nothing; only the exit status tells the result"},
     {"{-h|--help}", "Print this help and exit"},
     {"{-V|--version}", "Print the version and exit"},
     {"{-m|--metadata-snap}", "Check the held metadata snapshot instead of the live metadata"},
     {"{--auto-repair}", "Fix leaked data and metadata blocks, and clear the needs_check flag"},
     {"{--override-mapping-root} <block>", "Check the mapping tree rooted at <block> instead"},
     {"{--override-details-root} <block>",
      "Check the device details tree rooted at <block> instead"},
     {"{--clear-needs-check-flag}",
      "Clear the needs_check flag (fixing leaks first) when no fatal error is found"},
     {"{--ignore-non-fatal-errors}", "Exit 0 when the only errors are non-fatal (leaks)"},
     {"{--skip-mappings}",
      "Check the devices and the top level of the mapping tree only (no space maps)"},
     {"{--super-block-only}", "Check the superblock only"},
     kProgressRow});

// Progress and findings on stderr (two spaces per level), the info lines on stdout.
class PrintingReport final : public thin::CheckReport {
 public:
  PrintingReport(bool quiet, Progress& progress, std::uint64_t total)
      : quiet_(quiet), progress_(progress), total_(total) {}
  void phase(const std::string& title) override {
    progress_.clear();
    if (!quiet_) std::cerr << title << "\n";
    progress_.stage(title, pdata::io_counters().blocks_read, total_);
  }
  void problem(thin::Severity, const std::string& headline, const std::string& detail) override {
    if (quiet_) return;
    progress_.clear();
    std::cerr << "  " << headline << "\n";
    if (!detail.empty()) std::cerr << "    " << detail << "\n";
  }
  void info(std::uint64_t tid, std::uint64_t free_blocks) override {
    if (quiet_) return;
    std::cout << "TRANSACTION_ID=" << tid << "\n" << "METADATA_FREE_BLOCKS=" << free_blocks << "\n";
    std::cout.flush();
  }
  void note(const std::string& line) {
    progress_.clear();
    if (!quiet_) std::cerr << line << "\n";
  }

 private:
  bool quiet_;
  Progress& progress_;
  std::uint64_t total_;
};

int thin_check_main(int argc, char** argv) {
  return run("thin_check", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("quiet,q", "")
        ("metadata-snap,m", "")
        ("super-block-only", "")
        ("skip-mappings", "")
        ("ignore-non-fatal-errors", "")
        ("clear-needs-check-flag", "")
        ("auto-repair", "")
        ("override-mapping-root", po::value<std::string>(), "")
        ("override-details-root", po::value<std::string>(), "")
        ("input", po::value<std::vector<std::string>>(), "");
    add_progress_options(opts);
    po::positional_options_description pos;
    pos.add("input", -1);
    po::variables_map vm;
    try {
      vm = parse(normalize_args(argc, argv, {}), opts, pos);
    } catch (const po::error&) {
      // -q silences argument errors too (0.9.0 printed them; REFERENCE-TOOLS.md §6.9).
      for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "-q" || std::string(argv[i]) == "--quiet") return 1;
      throw;
    }

    if (vm.count("help")) {
      std::cout << kUsage;
      return 0;
    }
    if (vm.count("version")) {
      std::cout << kVersion << "\n";
      return 0;
    }
    const bool quiet = vm.count("quiet") > 0;
    // Argument errors: one line and the usage, or nothing at all with -q; exit 1 either way.
    auto usage_error = [&](const std::string& what) -> int {
      if (quiet) return 1;
      throw UsageError{what};
    };

    thin::CheckOptions copts;
    copts.superblock_only = vm.count("super-block-only") > 0;
    copts.skip_mappings = vm.count("skip-mappings") > 0;
    copts.metadata_snap = vm.count("metadata-snap") > 0;
    const bool ignore_non_fatal = vm.count("ignore-non-fatal-errors") > 0;
    const bool auto_repair = vm.count("auto-repair") > 0;
    const bool clear_flag = vm.count("clear-needs-check-flag") > 0;
    if (vm.count("override-mapping-root"))
      copts.override_mapping_root =
          parse_u64(vm["override-mapping-root"].as<std::string>(), "--override-mapping-root");
    if (vm.count("override-details-root"))
      copts.override_details_root =
          parse_u64(vm["override-details-root"].as<std::string>(), "--override-details-root");
    const bool overridden = copts.override_mapping_root || copts.override_details_root;

    if (auto_repair || clear_flag) {
      if (copts.metadata_snap) return usage_error("cannot perform fix within metadata snap");
      if (overridden) return usage_error("cannot perform fix with an overridden mapping root");
    }
    if (auto_repair) {
      if (ignore_non_fatal) return usage_error("cannot perform fix by ignoring non-fatal errors");
      if (copts.skip_mappings || copts.superblock_only)
        return usage_error("cannot perform fix without a full examination");
    }
    auto input = input_path(vm);
    if (!input) return usage_error(missing_argument("<INPUT>").what);

    thin::InputOptions io_opts;
    io_opts.exclusive = !copts.metadata_snap;
    io_opts.writable = auto_repair || clear_flag;
    std::optional<OutputLock> lock;  // --auto-repair / --clear-needs-check-flag write it
    if (io_opts.writable) {
      auto l = OutputLock::take(*input);
      if (!l) return report(l.error());
      lock.emplace(std::move(*l));
    }
    auto io = thin::open_input(*input, io_opts);
    if (!io) {
      const Error& e = io.error();
      // Not binary metadata: said even with -q (lvm2 logs it).
      if (e.code == Errc::kTooSmall || e.code == Errc::kBadFormat) return report(e);
      if (quiet) return 1;
      if (e.what.find("Device or resource busy") != std::string::npos) {
        std::cerr << "syscall 'open' failed: Device or resource busy\n"
                  << "Note: you cannot run this tool with these options on live metadata.\n";
        return 1;
      }
      return report(e);
    }

    // The whole check reads about every block in use once: that is the total.
    auto sb = thin::read_superblock(**io, 0);
    Progress progress("thin_check", progress_wanted(vm));
    PrintingReport out(quiet, progress, sb ? sb->metadata_sm.nr_allocated : 0);
    thin::CheckResult res = thin::check(**io, copts, out);

    bool non_fatal = res.non_fatal;
    bool cleared = false;
    if ((auto_repair || clear_flag) && !res.fatal && res.live) {
      thin::RepairOutcome fixed;
      auto r = thin::repair_leaks(**io, res, /*clear_needs_check=*/true, fixed);
      if (!r) {
        if (!quiet) std::cerr << r.error().what << "\n";
        return 1;
      }
      if (fixed.metadata_leaks) out.note("fixed metadata leaks");
      if (fixed.data_leaks) out.note("fixed data leaks");
      if (fixed.cleared_flag) out.note("cleared needs_check flag");
      cleared = fixed.cleared_flag;
      if (fixed.repaired_all_non_fatal) non_fatal = false;
    }
    // The kernel sets needs_check after a metadata error; not an error of the check itself.
    if (res.live && (res.live->flags & thin::kNeedsCheckFlag) && !cleared)
      out.note("the needs_check flag is set: the kernel found a metadata error; "
               "--clear-needs-check-flag clears it when the check passes");
    if (res.fatal) return 1;
    if (non_fatal && !ignore_non_fatal) return 1;
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_check, thin_check_main);
}  // namespace thinmeta::cli
