// SPDX-License-Identifier: GPL-3.0-or-later
// thin_ls: one row per thin device with the fields asked for (FORMAT.md §15), as 0.9.0 lays
// them out, plus 1.3.3's HIGHEST_* fields.
#include <unistd.h>

#include <iostream>
#include <map>
#include <sstream>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "thin/dump.h"
#include "thin/mapping_tree.h"
#include "thin/metadata.h"
#include "thin/pool_usage.h"
#include "thin/text_output.h"

namespace thinmeta::cli {
namespace {

const char* const kFields[] = {
    "DEV", "MAPPED_BLOCKS", "EXCLUSIVE_BLOCKS", "SHARED_BLOCKS", "MAPPED_SECTORS",
    "EXCLUSIVE_SECTORS", "SHARED_SECTORS", "MAPPED_BYTES", "EXCLUSIVE_BYTES", "SHARED_BYTES",
    "MAPPED", "EXCLUSIVE", "SHARED", "TRANSACTION", "CREATE_TIME", "SNAP_TIME",
    "HIGHEST_BLOCK", "HIGHEST_SECTOR", "HIGHEST_BYTE", "HIGHEST_MAPPED"};

std::string usage() {
  std::string fields = "\nwhere <fields> is a comma separated list (no spaces) from:\n";
  for (const char* f : kFields) fields += std::string("  ") + f + "\n";
  return usage_text(
      "Usage: thin_ls [options] {metadata device}\n"
      "Lists the thin devices of a pool, one row each, with the fields asked for.\n"
      "Options:\n",
      {{"{-h|--help}", "Print this help and exit"},
       {"{-m|--metadata-snap}", "Read the held metadata snapshot instead of the live metadata"},
       {"{--no-headers}", "Do not print the header row"},
       {"{-o|--format <fields>}", "The columns to print (default: DEV,MAPPED,CREATE_TIME,SNAP_TIME)"},
       {"{-V|--version}", "Print the version and exit"},
       kProgressRow},
      fields);
}

struct Row {
  std::uint64_t dev;
  thin::DeviceDetails details;
  thin::DeviceUsage usage;
};

std::string cell(const std::string& field, const Row& r, std::uint64_t block_sectors) {
  std::uint64_t mapped = r.details.mapped_blocks;
  std::uint64_t excl = r.usage.exclusive_blocks;
  std::uint64_t shared = mapped - std::min(mapped, excl);
  auto sectors = [&](std::uint64_t b) { return b * block_sectors; };
  auto bytes = [&](std::uint64_t b) { return b * block_sectors * 512; };
  auto highest = [&](auto fn) -> std::string {
    if (!r.usage.highest_block) return "-";
    return fn(*r.usage.highest_block + 1);
  };
  if (field == "DEV") return pdata::decimal_string(r.dev);
  if (field == "MAPPED_BLOCKS") return pdata::decimal_string(mapped);
  if (field == "EXCLUSIVE_BLOCKS") return pdata::decimal_string(excl);
  if (field == "SHARED_BLOCKS") return pdata::decimal_string(shared);
  if (field == "MAPPED_SECTORS") return pdata::decimal_string(sectors(mapped));
  if (field == "EXCLUSIVE_SECTORS") return pdata::decimal_string(sectors(excl));
  if (field == "SHARED_SECTORS") return pdata::decimal_string(sectors(shared));
  if (field == "MAPPED_BYTES") return pdata::decimal_string(bytes(mapped));
  if (field == "EXCLUSIVE_BYTES") return pdata::decimal_string(bytes(excl));
  if (field == "SHARED_BYTES") return pdata::decimal_string(bytes(shared));
  if (field == "MAPPED") return thin::human_size(bytes(mapped));
  if (field == "EXCLUSIVE") return thin::human_size(bytes(excl));
  if (field == "SHARED") return thin::human_size(bytes(shared));
  if (field == "TRANSACTION") return pdata::decimal_string(r.details.transaction_id);
  if (field == "CREATE_TIME") return pdata::decimal_string(r.details.creation_time);
  if (field == "SNAP_TIME") return pdata::decimal_string(r.details.snapshotted_time);
  if (field == "HIGHEST_BLOCK") return highest([](std::uint64_t n) { return pdata::decimal_string(n - 1); });
  if (field == "HIGHEST_SECTOR") return highest([&](std::uint64_t n) { return pdata::decimal_string(sectors(n) - 1); });
  if (field == "HIGHEST_BYTE") return highest([&](std::uint64_t n) { return pdata::decimal_string(bytes(n) - 1); });
  if (field == "HIGHEST_MAPPED") return highest([&](std::uint64_t n) { return thin::human_size(bytes(n) - 1); });
  return "";
}

// The fields of -o, or a UsageError naming the first one not known.
std::vector<std::string> parse_fields(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (true) {
    std::size_t comma = s.find(',', at);
    std::string f = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (std::find(std::begin(kFields), std::end(kFields), f) == std::end(kFields)) {
      std::string why = f.empty() ? "empty field" : "unknown field '" + f + "'";
      if (f.find(' ') != std::string::npos) why += " (fields are separated by commas, no spaces)";
      throw UsageError{why + " in --format '" + s + "'"};
    }
    out.push_back(f);
    if (comma == std::string::npos) return out;
    at = comma + 1;
  }
}

int thin_ls_main(int argc, char** argv) {
  const std::string kUsage = usage();
  return run("thin_ls", kUsage, [&]() -> int {
    po::options_description opts;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("format,o", po::value<std::vector<std::string>>(), "")
        ("no-headers", "")
        ("metadata-snap,m", "")
        ("input", po::value<std::vector<std::string>>(), "");
    po::positional_options_description pos;
    pos.add("input", -1);
    std::vector<std::string> args(argv + 1, argv + argc);
    add_progress_options(opts);
    auto vm = parse(args, opts, pos);
    if (help_or_version(vm, kUsage)) return 0;
    std::vector<std::string> fields = {"DEV", "MAPPED", "CREATE_TIME", "SNAP_TIME"};
    if (vm.count("format")) {
      fields = parse_fields(vm["format"].as<std::vector<std::string>>().back());
    }
    auto input = input_path(vm);
    if (!input) throw missing_argument("<INPUT>");

    thin::RootSelector root;
    root.snapshot = vm.count("metadata-snap") > 0;
    auto md = thin::open_metadata(*input, root);
    if (!md) return report(md.error());
    Progress progress("thin_ls", progress_wanted(vm));
    progress.stage("listing", pdata::io_counters().blocks_read, md->sb().metadata_sm.nr_allocated);

    auto uses = [&](std::initializer_list<const char*> prefixes) {
      for (const auto& f : fields)
        for (const char* p : prefixes)
          if (f.rfind(p, 0) == 0) return true;
      return false;
    };
    thin::UsageOptions uo;
    uo.exclusive = uses({"EXCLUSIVE", "SHARED"});
    uo.highest = uses({"HIGHEST"});

    std::vector<Row> rows;
    std::optional<Error> err;
    thin::walk_details(
        md->io(), md->details_root(),
        [&](std::uint64_t id, const thin::DeviceDetails& d) {
          rows.push_back(Row{id, d, {}});
          return pdata::Flow::kContinue;
        },
        [&](const pdata::Damage& d) {
          err = Error{Errc::kDamage,
                      "metadata contains errors (run thin_check for details): device details tree: " +
                          d.what};
          return pdata::Flow::kStop;
        });
    if (err) return report(*err);
    if (uo.exclusive || uo.highest) {
      auto usage = thin::pool_usage(md->io(), md->mapping_root(), uo);
      if (!usage) return report(usage.error());
      for (Row& r : rows)
        if (auto it = usage->find(r.dev); it != usage->end()) r.usage = it->second;
    }

    std::vector<std::vector<std::string>> grid;
    if (!vm.count("no-headers")) grid.push_back(fields);
    std::uint64_t bs = md->sb().data_block_size;
    for (const Row& r : rows) {
      grid.emplace_back();
      for (const auto& f : fields) grid.back().push_back(cell(f, r, bs));
    }
    std::vector<std::size_t> width(fields.size(), 0);
    for (const auto& row : grid)
      for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    thin::TextOutput out(STDOUT_FILENO);
    for (const auto& row : grid) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        out.put(std::string(width[i] - row[i].size(), ' '));
        out.put(row[i]);
        out.put(' ');
      }
      out.put('\n');
    }
    if (auto f = out.flush(); !f) return report(f.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_ls, thin_ls_main);
}  // namespace thinmeta::cli
