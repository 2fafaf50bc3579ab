// SPDX-License-Identifier: GPL-3.0-or-later
// thin_repair: damaged metadata -> fresh binary metadata. The damage-tolerant walk of
// thin_dump --repair feeds the restore writer directly; no XML in between.
#include <iostream>
#include <memory>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "persistent-data/io/io_engine.h"
#include "thin/metadata.h"
#include "thin/repair/repair.h"
#include "thin/restore/restorer.h"
#include "thin/restore/spill.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_repair [options] -i {device|file} -o {device|file}\n"
    "Rebuilds damaged thin-pool metadata onto another device or file.\n"
    "Options:\n",
    {{"{-h|--help}", "Print this help and exit"},
     {"{-i|--input} <device|file>", "The damaged metadata (binary format)"},
     {"{-o|--output} <device|file>",
      "Where to write: a block device, or a regular file whose size sets the metadata size"},
     {"{--transaction-id} <natural>",
      "Use this transaction id (needed when the superblock is unreadable)"},
     {"{--data-block-size} <natural>",
      "Use this data block size in sectors (needed when the superblock is unreadable)"},
     {"{--nr-data-blocks} <natural>",
      "Use this data device size in data blocks (needed when the superblock is unreadable)"},
     {"{--use-metadata-snap}",
      "A device whose live tree is lost takes its tree in the held metadata snapshot"},
     {"{-q|--quiet}", "Do not report what was lost or how the trees were found"},
     {"{-V|--version}", "Print the version and exit"},
     kProgressRow});

int thin_repair_main(int argc, char** argv) {
  return run("thin_repair", kUsage, [&]() -> int {
    po::options_description opts;
    add_input_output_options(opts);
    add_superblock_override_options(opts);
    opts.add_options()
        ("use-metadata-snap", "")
        ("quiet,q", "")
        ("positional", po::value<std::vector<std::string>>(), "");
    add_progress_options(opts);
    po::positional_options_description pos;
    pos.add("positional", -1);
    auto vm = parse(normalize_args(argc, argv, {}), opts, pos);
    if (help_or_version(vm, kUsage)) return 0;
    // Older lvm2 passes its default options [ "" ] verbatim: an empty argument is ignored.
    if (auto extra = input_path(vm, "positional"))
      throw UsageError{"unexpected argument '" + *extra + "' found"};
    const auto [in, out] = input_output(vm);
    bool quiet = vm.count("quiet") > 0;

    SuperblockOverrides ov = superblock_overrides(vm);
    require_valid_data_block_size(ov);
    thin::RepairOptions ropts;
    apply_overrides(ov, ropts);
    ropts.use_snapshot = vm.count("use-metadata-snap") > 0;
    ropts.clear_needs_check = true;
    ropts.sink_counts_mappings = true;  // the restorer recomputes mapped_blocks
    thin::RestoreOptions wopts;
    wopts.clear_needs_check = true;
    wopts.time_covers_mappings = true;  // devices walked once: their times are seen there

    if (auto r = check_output(out); !r) return report(r.error());
    auto io = thin::open_input(in, thin::InputOptions{});
    if (!io) return report(io.error());
    if (same_file(in, out))
      return report(Error{Errc::kInvalidArgument, "The input and the output are the same device."});
    auto lock = OutputLock::take(out);  // a second writer of the same file is refused
    if (!lock) return report(lock.error());

    // Everything is read and checked before the output is opened for writing. The repairing
    // walk runs twice (count, then build: memory does not grow with the mappings) unless what
    // it yields needs the in-memory restorer.
    Progress progress("thin_repair", progress_wanted(vm));
    progress.stage("reading", pdata::io_counters().blocks_read, (*io)->nr_blocks());
    wopts.streaming = true;
    auto restorer = std::make_unique<thin::Restorer>(wopts);
    auto spill = std::make_unique<thin::SpillSink>(*restorer);  // replayed by the second pass
    std::vector<std::string> notes;
    auto stats = thin::repair(**io, ropts, *spill, notes);
    if (!stats && restorer->needs_memory()) {
      wopts.streaming = false;
      spill.reset();
      restorer = std::make_unique<thin::Restorer>(wopts);
      notes.clear();
      stats = thin::repair(**io, ropts, *restorer, notes);
    }
    progress.clear();
    if (!quiet)
      for (const auto& n : notes) std::cerr << n << "\n";
    if (!stats) return report(stats.error());
    // The second pass replays the record, never walks the input again (it could read what the
    // output overwrote): no record, no write.
    if (auto r = thin::SpillSink::check(spill.get()); !r) return report(r.error());

    pdata::OpenOptions oo;
    oo.writable = true;
    oo.exclusive = true;
    auto dst = pdata::open_engine(out, oo);
    if (!dst) return report(dst.error());
    if ((*dst)->nr_blocks() > pdata::kMaxMetadataBlocks && !quiet)
      std::cerr << "Warning: truncating metadata device to " << pdata::kMaxMetadataBlocks
                << " 4k blocks\n";
    progress.stage("writing", pdata::io_counters().blocks_written, 0);
    auto written = restorer->commit(**dst, [&](thin::MetadataSink& sink) -> Result<> {
      if (spill && spill->complete()) return spill->replay(sink);
      std::vector<std::string> again;
      auto r = thin::repair(**io, ropts, sink, again);
      if (!r) return std::unexpected(r.error());
      return {};
    });
    progress.clear();
    if (!written) return report(written.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_repair, thin_repair_main);
}  // namespace thinmeta::cli
