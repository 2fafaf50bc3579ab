// SPDX-License-Identifier: GPL-3.0-or-later
// The multi-call binary: the tool is basename(argv[0]), or the first argument when called as
// `thinmeta <tool> ...`.
#include <csignal>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

#include "bin/cli.h"
#include "persistent-data/huge_heap.h"
#include "persistent-data/io/io_engine.h"

namespace {

// One line per tool for `thinmeta --help` (a tool missing here is listed without one).
const std::map<std::string, const char*> kWhat = {
    {"thin_check", "check thin-pool metadata (what lvm2 runs at activation)"},
    {"thin_delta", "print the blocks that differ between two thin devices"},
    {"thin_dump", "print the metadata as XML or human-readable text"},
    {"thin_ls", "list the thin devices with their mapped, exclusive and shared usage"},
    {"thin_metadata_pack", "compress the metadata blocks into a pack file"},
    {"thin_metadata_size", "compute the metadata size a pool needs"},
    {"thin_metadata_unpack", "restore metadata from a pack file"},
    {"thin_migrate", "copy a read-only thin device of a live pool to a device or file"},
    {"thin_receive", "apply a thin_send stream to a device or file"},
    {"thin_repair", "rebuild damaged metadata onto another device or file"},
    {"thin_restore", "write metadata from an XML dump"},
    {"thin_rmap", "list the thin devices that map given data blocks"},
    {"thin_send", "write a full or incremental stream of a thin device"},
    {"thin_shrink", "move the data of an inactive pool below a new data device size"},
    {"thin_trim", "discard the data blocks no thin device maps"},
};

void usage(std::ostream& os) {
  os << "Usage: thinmeta <command> <args>  (or run a command through its link, e.g. thin_check)\n"
     << "commands:\n";
  for (const auto& [n, fn] : thinmeta::cli::tools()) {
    os << "  " << n;
    if (auto w = kWhat.find(n); w != kWhat.end())
      os << std::string(n.size() < 22 ? 22 - n.size() : 1, ' ') << w->second;
    os << "\n";
  }
  os << "'<command> --help' describes the options of each.\n";
}

int run_tool(thinmeta::cli::ToolMain fn, int argc, char** argv) {
  if (auto ok = thinmeta::pdata::check_engine_env(); !ok) return thinmeta::cli::report(ok.error());
  return fn(argc, argv) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  thinmeta::pdata::use_huge_heap();  // before the tools allocate: fewer page faults
  std::signal(SIGPIPE, SIG_IGN);  // writes get EPIPE; the tools then end quietly
  std::string name = argv[0];
  if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  const auto& tools = thinmeta::cli::tools();
  auto it = tools.find(name);
  if (it != tools.end()) return run_tool(it->second, argc, argv);
  if (argc >= 2) {
    it = tools.find(argv[1]);
    if (it != tools.end()) return run_tool(it->second, argc - 1, argv + 1);
    if (std::strcmp(argv[1], "-V") == 0 || std::strcmp(argv[1], "--version") == 0) {
      std::cout << thinmeta::cli::kVersion << "\n";
      return 0;
    }
    if (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
      usage(std::cout);
      return 0;
    }
    std::cerr << "Unknown command '" << argv[1] << "'\n";
  }
  usage(std::cerr);
  return 1;
}
