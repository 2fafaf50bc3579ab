// SPDX-License-Identifier: GPL-3.0-or-later
// The multi-call binary: the tool is basename(argv[0]), or the first argument when called as
// `thinmeta <tool> ...`.
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "bin/cli.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // writes get EPIPE; the tools then end quietly
  std::string name = argv[0];
  if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  const auto& tools = thinmeta::cli::tools();
  auto it = tools.find(name);
  if (it != tools.end()) return it->second(argc, argv) == 0 ? 0 : 1;
  if (argc >= 2) {
    it = tools.find(argv[1]);
    if (it != tools.end()) return it->second(argc - 1, argv + 1) == 0 ? 0 : 1;
    if (std::strcmp(argv[1], "-V") == 0 || std::strcmp(argv[1], "--version") == 0) {
      std::cout << thinmeta::cli::kVersion << "\n";
      return 0;
    }
    std::cerr << "Unknown command '" << argv[1] << "'\n";
  }
  std::cerr << "Usage: thinmeta <command> <args>\ncommands:\n";
  for (const auto& [n, fn] : tools) std::cerr << "  " << n << "\n";
  return 1;
}
