// SPDX-License-Identifier: GPL-3.0-or-later
// thin_rmap: which thin devices and virtual blocks map the given data block regions.
#include <unistd.h>

#include <charconv>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string_view>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/metadata.h"
#include "thin/rmap.h"
#include "thin/text_output.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_rmap [options] --region <block range> {device|file}\n"
    "Lists which thin devices map the given data blocks.\n"
    "Options:\n",
    {{"{-h|--help}", "Print this help and exit"},
     {"{-V|--version}", "Print the version and exit"},
     {"{-m|--metadata-snap}", "Read the held metadata snapshot instead of the live metadata"},
     {"{--region <block range>}*", "The data blocks to look for (may be repeated)"},
     kProgressRow},
    "Where:\n"
    "  <block range> is of the form <begin>..<one-past-the-end>\n"
    "  for example 5..45 denotes blocks 5 to 44 inclusive, but not block 45\n");

struct RegionError {
  std::string what;
};

// <begin>..<end>, two decimal block numbers (no sign, no spaces), end > begin.
thin::DataRegion parse_region(const std::string& s) {
  auto malformed = [&](const std::string& why) {
    return RegionError{"badly formed region '" + s + "': " + why};
  };
  auto dots = s.find("..");
  if (dots == std::string::npos) throw malformed("expected <begin>..<one-past-the-end>, e.g. 5..45");
  auto number = [&](std::string_view t) {
    std::uint64_t v = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size())
      throw malformed("'" + std::string(t) + "' is not a block number");
    return v;
  };
  std::uint64_t b = number(std::string_view(s).substr(0, dots));
  std::uint64_t e = number(std::string_view(s).substr(dots + 2));
  if (e <= b) throw malformed("end <= begin (the end is one past the last block)");
  return thin::DataRegion{b, e};
}

int thin_rmap_main(int argc, char** argv) {
  return run("thin_rmap", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("metadata-snap", po::value<std::string>(), "")
        ("region", po::value<std::vector<std::string>>(), "")
        ("input", po::value<std::vector<std::string>>(), "");
    po::positional_options_description pos;
    pos.add("input", -1);
    add_progress_options(opts);
    auto vm = parse(normalize_args(argc, argv, {{'m', "metadata-snap"}}), opts, pos);
    if (help_or_version(vm, kUsage)) return 0;
    std::vector<thin::DataRegion> regions;
    if (vm.count("region")) {
      try {
        for (const auto& s : vm["region"].as<std::vector<std::string>>())
          regions.push_back(parse_region(s));
      } catch (const RegionError& e) {
        std::cerr << e.what << "\n";
        return 1;
      }
    }
    if (regions.empty()) throw UsageError{"No regions provided."};
    auto input = input_path(vm);
    if (!input) throw missing_argument("<INPUT>");

    const thin::RootSelector root = root_selector(vm);
    auto md = thin::open_metadata(*input, root);
    if (!md) return report(md.error());
    Progress progress("thin_rmap", progress_wanted(vm));
    progress.stage("mapping", pdata::io_counters().blocks_read, md->sb().metadata_sm.nr_allocated);
    auto runs = thin::reverse_map(md->io(), md->mapping_root(), regions);
    progress.clear();
    if (!runs) return report(runs.error());
    thin::TextOutput out(STDOUT_FILENO);
    thin::write_reverse_runs(*runs, out);
    if (auto f = out.flush(); !f) return report(f.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_rmap, thin_rmap_main);
}  // namespace thinmeta::cli
