// SPDX-License-Identifier: GPL-3.0-or-later
// thin_rmap: which thin devices and virtual blocks map the given data block regions.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/metadata.h"
#include "thin/rmap.h"
#include "thin/text_output.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Usage: thin_rmap [options] {device|file}\n"
    "Options:\n"
    "  {-h|--help}\n"
    "  {-V|--version}\n"
    "  {-m|--metadata-snap}\n"
    "  {--region <block range>}*\n"
    "Where:\n"
    "  <block range> is of the form <begin>..<one-past-the-end>\n"
    "  for example 5..45 denotes blocks 5 to 44 inclusive, but not block 45\n";

struct RegionError {
  std::string what;
};

// 0.9.0's parse: strtoull (base 10) for the begin, "..", strtoull for the end; trailing text
// after the end is ignored.
thin::DataRegion parse_region(const std::string& s) {
  const char* p = s.c_str();
  char* end = nullptr;
  errno = 0;
  unsigned long long b = std::strtoull(p, &end, 10);
  if (end == p || errno == ERANGE || std::strncmp(end, "..", 2) != 0)
    throw RegionError{"badly formed region (no dots)"};
  const char* q = end + 2;
  errno = 0;
  unsigned long long e = std::strtoull(q, &end, 10);
  if (end == q || errno == ERANGE) throw RegionError{"badly formed region (couldn't parse numbers)"};
  if (e <= b) throw RegionError{"badly formed region (end <= begin)"};
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

    thin::RootSelector root;
    if (vm.count("metadata-snap")) {
      root.snapshot = true;
      root.snapshot_block = snapshot_block(vm["metadata-snap"].as<std::string>());
    }
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
