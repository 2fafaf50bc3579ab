// SPDX-License-Identifier: GPL-3.0-or-later
// thin_dump: print thin-pool metadata as XML or human-readable text.
#include <unistd.h>

#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/dump.h"
#include "thin/human_readable.h"
#include "thin/repair/repair.h"
#include "xml/metadata_writer.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_dump [options] {device|file}\n"
    "Prints thin-pool metadata as XML (what thin_restore reads) or human-readable text.\n"
    "Options:\n",
    {{"{-h|--help}", "Print this help and exit"},
     {"{-f|--format} {xml|human_readable}", "Output format (default: xml)"},
     {"{-r|--repair}", "Dump damaged metadata, recovering what can be recovered"},
     {"{-m|--metadata-snap}[=block#]",
      "Dump the held metadata snapshot (the block number, if given, must be attached)"},
     {"{-o|--output} <xml file>", "Write to this file instead of stdout"},
     {"{--dev-id} <dev-id>", "Dump only this thin device (may be repeated)"},
     {"{--skip-mappings}", "Dump the devices without their mappings"},
     {"{--transaction-id} <natural>", "Print this transaction id instead of the superblock's"},
     {"{--data-block-size} <natural>",
      "Print this data block size (sectors) instead of the superblock's"},
     {"{--nr-data-blocks} <natural>",
      "Print this number of data blocks instead of the superblock's"},
     {"{--use-metadata-snap}",
      "With --repair: a device whose live tree is lost takes its held snapshot's tree"},
     {"{-q|--quiet}", "With --repair: do not report what was lost or recovered"},
     {"{-V|--version}", "Print the version and exit"},
     kProgressRow});

int thin_dump_main(int argc, char** argv) {
  return run("thin_dump", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("format,f", po::value<std::string>()->default_value("xml"), "")
        ("repair,r", "")
        ("metadata-snap", po::value<std::string>(), "")
        ("output,o", po::value<std::string>(), "")
        ("dev-id", po::value<std::vector<std::string>>(), "")
        ("skip-mappings", "")
        ("use-metadata-snap", "")
        ("quiet,q", "")
        ("input", po::value<std::vector<std::string>>(), "");
    add_superblock_override_options(opts);
    po::positional_options_description pos;
    pos.add("input", -1);
    add_progress_options(opts);
    auto vm = parse(normalize_args(argc, argv, {{'m', "metadata-snap"}}), opts, pos);

    if (help_or_version(vm, kUsage)) return 0;
    std::string format = vm["format"].as<std::string>();
    if (format != "xml" && format != "human_readable")
      throw UsageError{"unknown format '" + format + "'"};

    thin::DumpOptions dopts;
    dopts.skip_mappings = vm.count("skip-mappings") > 0;
    if (vm.count("dev-id"))
      for (const auto& s : vm["dev-id"].as<std::vector<std::string>>())
        dopts.dev_ids.push_back(parse_u64(s, "<dev-id>"));
    const thin::RootSelector root = root_selector(vm);
    bool repair = vm.count("repair") > 0;
    if (repair && root.snapshot)
      throw UsageError{"--repair cannot be used with --metadata-snap"};
    thin::RepairOptions ropts;
    SuperblockOverrides ov = superblock_overrides(vm);
    apply_overrides(ov, ropts);
    ropts.use_snapshot = vm.count("use-metadata-snap") > 0;
    if (!repair && ropts.use_snapshot) throw UsageError{"--use-metadata-snap needs --repair"};
    apply_overrides(ov, dopts);
    ropts.dev_ids = dopts.dev_ids;
    ropts.skip_mappings = dopts.skip_mappings;
    bool quiet = vm.count("quiet") > 0;

    auto input = input_path(vm);
    if (!input) throw missing_argument("<INPUT>");

    std::optional<thin::Metadata> md;
    std::unique_ptr<pdata::IoEngine> raw;
    if (repair) {
      auto io = thin::open_input(*input, {});
      if (!io) return report(io.error());
      raw = std::move(*io);
    } else {
      auto m = thin::open_metadata(*input, root);
      if (!m) return report(m.error());
      md.emplace(std::move(*m));
    }

    auto output = open_output_option(vm);
    if (!output) return report(output.error());
    std::optional<OutputFile>& file = output->file;
    thin::TextOutput out(output->fd());
    xml::MetadataWriter xml_writer(out);
    thin::HumanReadableWriter human_writer(out);
    thin::MetadataSink& sink =
        format == "xml" ? static_cast<thin::MetadataSink&>(xml_writer) : human_writer;
    Result<> r;
    std::vector<std::string> notes;
    // Progress only with -o: on stdout the dump itself shows how far it got.
    Progress progress("thin_dump", file.has_value() && progress_wanted(vm));
    progress.stage("dumping", pdata::io_counters().blocks_read,
                   md ? md->sb().metadata_sm.nr_allocated : raw->nr_blocks());
    if (repair) {
      auto st = thin::repair(*raw, ropts, sink, notes);
      if (!st) r = std::unexpected(st.error());
    } else {
      r = thin::dump(*md, dopts, sink);
    }
    if (!r) out.discard();  // no half dump on stdout when the damage shows up early
    progress.clear();
    auto flushed = out.flush();
    if (!quiet)
      for (const auto& n : notes) std::cerr << n << "\n";
    if (!r) return report(r.error());
    if (!flushed) return report(flushed.error());
    if (file)
      if (auto c = file->commit(); !c) return report(c.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_dump, thin_dump_main);
}  // namespace thinmeta::cli
