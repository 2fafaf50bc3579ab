// SPDX-License-Identifier: GPL-3.0-or-later
// thin_delta: the differences between the mappings of two thin devices (or two raw mapping
// tree roots), as 0.9.0's XML.
#include <unistd.h>

#include <iostream>

#include "bin/cli.h"
#include "thin/delta.h"
#include "thin/delta_writer.h"
#include "thin/dump.h"
#include "thin/metadata.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_delta [options] --thin1 <dev-id> --thin2 <dev-id> <device or file>\n"
    "Prints which virtual blocks differ between two thin devices.\n"
    "Options:\n",
    {{"{--thin1, --snap1} <dev-id>", "The left thin device"},
     {"{--thin2, --snap2} <dev-id>", "The right thin device"},
     {"{--root1} <block#>", "Instead of --thin1: the mapping tree rooted at this metadata block"},
     {"{--root2} <block#>", "Instead of --thin2: the mapping tree rooted at this metadata block"},
     {"{-m, --metadata-snap} [block#]",
      "Read the held metadata snapshot (the block number, if given, must be attached)"},
     {"{--verbose}", "List every range with its data blocks instead of merging touching ranges"},
     {"{-h|--help}", "Print this help and exit"},
     {"{-V|--version}", "Print the version and exit"}});

// The last of --snapN/--thinN (or --rootN) given, as getopt's last-one-wins.
std::optional<thin::DiffSide> side(const po::variables_map& vm, const std::vector<std::string>& args,
                                   int n) {
  std::string snap = "--snap" + std::to_string(n), thin = "--thin" + std::to_string(n);
  std::string root = "--root" + std::to_string(n);
  std::optional<thin::DiffSide> s;
  // Walk the arguments in order so the last spelling given wins.
  std::size_t snap_i = 0, root_i = 0, thin_i = 0;
  auto snaps = vm.count("snap" + std::to_string(n))
                   ? vm["snap" + std::to_string(n)].as<std::vector<std::string>>()
                   : std::vector<std::string>{};
  auto thins = vm.count("thin" + std::to_string(n))
                   ? vm["thin" + std::to_string(n)].as<std::vector<std::string>>()
                   : std::vector<std::string>{};
  auto roots = vm.count("root" + std::to_string(n))
                   ? vm["root" + std::to_string(n)].as<std::vector<std::string>>()
                   : std::vector<std::string>{};
  for (const auto& a : args) {
    auto is = [&](const std::string& opt) { return a == opt || a.rfind(opt + "=", 0) == 0; };
    if (is(snap) && snap_i < snaps.size())
      s = thin::DiffSide{parse_u64(snaps[snap_i++], "thin id " + std::to_string(n)), false};
    else if (is(thin) && thin_i < thins.size())
      s = thin::DiffSide{parse_u64(thins[thin_i++], "thin id " + std::to_string(n)), false};
    else if (is(root) && root_i < roots.size())
      s = thin::DiffSide{parse_u64(roots[root_i++], "root " + std::to_string(n)), true};
  }
  // Abbreviated option names do not match above: fall back to the last value given.
  if (!s && !snaps.empty()) s = thin::DiffSide{parse_u64(snaps.back(), "thin id " + std::to_string(n)), false};
  if (!s && !thins.empty()) s = thin::DiffSide{parse_u64(thins.back(), "thin id " + std::to_string(n)), false};
  if (!s && !roots.empty()) s = thin::DiffSide{parse_u64(roots.back(), "root " + std::to_string(n)), true};
  return s;
}

int thin_delta_main(int argc, char** argv) {
  return run("thin_delta", kUsage, [&]() -> int {
    po::options_description opts;
    using Strings = std::vector<std::string>;
    opts.add_options()
        ("help,h", "")
        ("version,V", "")
        ("snap1", po::value<Strings>(), "")
        ("thin1", po::value<Strings>(), "")
        ("snap2", po::value<Strings>(), "")
        ("thin2", po::value<Strings>(), "")
        ("root1", po::value<Strings>(), "")
        ("root2", po::value<Strings>(), "")
        ("metadata-snap", po::value<std::string>(), "")
        ("verbose", "")
        ("input", po::value<Strings>(), "");
    po::positional_options_description pos;
    pos.add("input", -1);
    auto args = normalize_args(argc, argv, {{'m', "metadata-snap"}});
    auto vm = parse(args, opts, pos);

    if (help_or_version(vm, kUsage)) return 0;
    auto input = input_path(vm);
    if (!input) throw missing_argument("<INPUT>");
    auto left = side(vm, args, 1);
    if (!left) throw UsageError{"--thin1 or --root1 not specified"};
    auto right = side(vm, args, 2);
    if (!right) throw UsageError{"--thin2 or --root2 not specified"};

    const thin::RootSelector root = root_selector(vm);
    auto md = thin::open_metadata(*input, root);
    if (!md) return report(md.error());

    pdata::IoEngine& io = md->io();
    auto tree_of = [&](const thin::DiffSide& s, int n) -> pdata::BlockAddr {
      if (s.is_root) return s.value;
      auto r = thin::lookup_device_root(io, md->mapping_root(), s.value);
      if (!r) throw std::runtime_error(r.error().what);
      if (!*r)
        throw Error{Errc::kNotFound, "Unable to find mapping tree for snap" + std::to_string(n) +
                                         " (" + std::to_string(s.value) + ")"};
      return **r;
    };
    pdata::BlockAddr left_root = 0, right_root = 0;
    try {
      left_root = tree_of(*left, 1);
      right_root = tree_of(*right, 2);
    } catch (const Error& e) {
      return report(e);
    }

    thin::SuperblockInfo sb = thin::superblock_info(*md);
    if (md->sb().held_root) sb.metadata_snap = md->sb().held_root;
    thin::TextOutput out(STDOUT_FILENO);
    thin::DeltaWriter writer(out, vm.count("verbose") > 0);
    writer.begin(sb, *left, *right);
    auto r = thin::diff_trees(io, left_root, right_root, writer);
    if (!r) out.discard();
    auto flushed = out.flush();
    if (!r) {
      if (r.error().code == Errc::kDamage)
        return report(Error{Errc::kDamage, "damage in mapping tree, please run thin_check: " +
                                               r.error().what});
      return report(r.error());
    }
    if (!flushed) return report(flushed.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_delta, thin_delta_main);
}  // namespace thinmeta::cli
