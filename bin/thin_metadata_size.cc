// SPDX-License-Identifier: GPL-3.0-or-later
// thin_metadata_size: estimate the metadata device size for a pool, with 0.9.0's options,
// messages and output (FORMAT.md §17, REFERENCE-TOOLS.md §1.8), plus 1.x's unit spellings
// and -n=, and the kernel's block size rules in 1.3.3's words. getopt_long, as the
// reference: options are handled in order, so the first bad one decides the message.
#include <getopt.h>

#include <iostream>
#include <string>

#include "bin/cli.h"
#include "persistent-data/io/block.h"
#include "thin/metadata_size.h"

namespace thinmeta::cli {
namespace {

const char* const kHelp =
    "Thin Provisioning Metadata Device Size Calculator.\n"
    "Usage: thin_metadata_size [options]\n"
    "\t-b  --block-size BLOCKSIZE[bskKmMgGtTpPeEzZyY]  Block size of thin provisioned devices.\n"
    "\t-s  --pool-size SIZE[bskKmMgGtTpPeEzZyY]        Size of pool device.\n"
    "\t-m  --max-thins #MAXTHINS[bskKmMgGtTpPeEzZyY]   Maximum sum of all thin devices and "
    "snapshots.\n"
    "\t-u  --unit {bskKmMgGtTpPeEzZyY}                 Output unit specifier.\n"
    "\t-n  --numeric-only [short|long]                 Output numeric value only (optionally "
    "with short/long unit identifier).\n"
    "\t-h  --help                                      This help.\n"
    "\t-V  --version                                   Print thin provisioning tools version.\n";

enum class Numeric { kNone, kPlain, kShort, kLong };

int abort_prg(const std::string& msg) {
  std::cerr << "thin_metadata_size - " << msg << "\n";
  return 1;
}

int thin_metadata_size_main(int argc, char** argv) {
  static const option kLong[] = {{"block-size", required_argument, nullptr, 'b'},
                                 {"pool-size", required_argument, nullptr, 's'},
                                 {"max-thins", required_argument, nullptr, 'm'},
                                 {"unit", required_argument, nullptr, 'u'},
                                 {"numeric-only", optional_argument, nullptr, 'n'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {nullptr, 0, nullptr, 0}};
  int unit = thin::kUnitSectors;
  Numeric numeric = Numeric::kNone;
  std::uint64_t block = 0, pool = 0, thins = 0;  // sectors, sectors, count
  std::uint64_t block_bytes = 0;
  std::string echo_block, echo_pool, echo_thins;
  optind = 1;
  opterr = 0;  // argument errors are reported below, in 1.3.3's wording
  int c;
  while ((c = getopt_long(argc, argv, ":b:s:m:u:n::hV", kLong, nullptr)) != -1) {
    switch (c) {
      case 'b':
      case 's':
      case 'm': {
        thin::SizeArg a;
        if (!thin::parse_size_arg(optarg, a)) return abort_prg("Invalid unit specifier!");
        std::uint64_t& v = c == 'b' ? block : c == 's' ? pool : thins;
        if (v) return abort_prg("option already given!");
        // Sizes are kept in sectors; a max-thins with a unit is value * factor.
        v = c == 'm' && a.has_unit ? a.bytes : a.bytes / 512;
        if (c == 'b') block_bytes = a.bytes;
        std::string echo = a.echo;
        if (!a.has_unit && c != 'm') echo += thin::unit_name(unit);  // 0.9.0 quirk
        (c == 'b' ? echo_block : c == 's' ? echo_pool : echo_thins) = echo;
        break;
      }
      case 'u':
        unit = thin::unit_index(optarg);
        if (unit < 0) return abort_prg("output unit specifier invalid!");
        break;
      case 'n': {
        if (numeric != Numeric::kNone) return abort_prg("-n already given!");
        numeric = Numeric::kPlain;
        if (optarg) {
          std::string_view a(optarg);
          if (a.starts_with('=')) a.remove_prefix(1);  // 1.x's -n=short
          if (!a.empty() && std::string_view("short").starts_with(a))
            numeric = Numeric::kShort;
          else if (!a.empty() && std::string_view("long").starts_with(a))
            numeric = Numeric::kLong;
          else
            return abort_prg("-n invalid option argument");
        }
        break;
      }
      case 'h': std::cout << kHelp; return 0;
      case 'V': std::cout << kVersion << "\n"; return 0;
      case ':':
        std::cerr << "thin_metadata_size: a value is required for '" << argv[optind - 1]
                  << "' but none was supplied\nFor more information, try '--help'.\n";
        return 1;
      default: {
        std::string bad = optopt ? std::string("-") + static_cast<char>(optopt)
                                 : std::string(argv[optind - 1]);
        if (auto eq = bad.find('='); eq != std::string::npos) bad.resize(eq);
        std::cerr << "thin_metadata_size: unexpected argument '" << bad
                  << "' found\nFor more information, try '--help'.\n";
        return 1;
      }
    }
  }
  if (!block) return abort_prg("block size required!");
  if (!pool) return abort_prg("pool size required!");
  if (!thins) return abort_prg("max thins required!");
  // What the kernel takes (dm-thin: a multiple of 64 KiB up to 1 GiB), in 1.3.3's words;
  // this also covers 0.9.0's "power of two" rule, which the kernel does not have.
  if (block_bytes % (64 << 10) != 0) return abort_prg("block size must be a multiple of 64 KiB");
  if (block_bytes > (1ull << 30)) return abort_prg("maximum block size is 1 GiB");
  if (pool <= block) return abort_prg("pool size must be larger than block size");

  const std::uint64_t blocks = thin::estimate_metadata_blocks(block, pool, thins);
  if (blocks > pdata::kMaxMetadataBlocks)
    std::cerr << "thin_metadata_size - warning: the estimate is more than the kernel can use: "
                 "a metadata device holds at most "
              << pdata::kMaxMetadataBlocks << " blocks of 4 KiB (about 15.9 GiB)\n";
  std::string value = thin::format_size(blocks, unit);
  switch (numeric) {
    case Numeric::kNone:
      std::cout << "thin_metadata_size - " << value << " " << thin::unit_name(unit)
                << " estimated metadata area size for \"--block-size=" << echo_block
                << " --pool-size=" << echo_pool << " --max-thins=" << echo_thins << "\"\n";
      break;
    case Numeric::kPlain: std::cout << value << "\n"; break;
    case Numeric::kShort: std::cout << value << thin::unit_char(unit) << "\n"; break;
    case Numeric::kLong: std::cout << value << thin::unit_name(unit) << "\n"; break;
  }
  return 0;
}

}  // namespace
THINMETA_TOOL(thin_metadata_size, thin_metadata_size_main);
}  // namespace thinmeta::cli
