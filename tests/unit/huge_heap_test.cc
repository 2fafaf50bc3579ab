// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/huge_heap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace thinmeta::pdata {
namespace {

// The header line (range ... name) and the VmFlags line of the mapping that holds `p`, from
// /proc/self/smaps ("" if none does).
std::string mapping_of(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  std::string header;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (line.find(':') > line.find(' ') && std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
      header = a >= lo && a < hi ? line : "";
      continue;
    }
    if (!header.empty() && line.rfind("VmFlags:", 0) == 0) return header + " | " + line;
  }
  return "";
}

// Each case runs in a fresh process (threadsafe death tests re-run the binary): the heap is
// that of a process that has allocated little, as the tools' is when main() starts.
TEST(HugeHeap, BlocksAllocatedAfterwardsLieInHugePageAdvisedHeap) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto body = [] {
    ::unsetenv("THINMETA_HUGE_HEAP");
    if (!use_huge_heap()) std::_Exit(2);
    // 8 MiB: once a mapping of its own (above glibc's 128 KiB threshold), now from the heap;
    // its middle is in the advised range (which starts at the first 2 MiB boundary).
    auto* big = static_cast<char*>(std::malloc(std::size_t{8} << 20));
    void* small = std::malloc(100);
    std::string m = mapping_of(big + (std::size_t{4} << 20));
    bool ok = m.find("[heap]") != std::string::npos && m.find(" hg") != std::string::npos &&
              mapping_of(small).find("[heap]") != std::string::npos;
    std::fprintf(stderr, "%s\n", m.c_str());
    std::free(big);
    std::free(small);
    std::_Exit(ok ? 0 : 3);
  };
  EXPECT_EXIT(body(), ::testing::ExitedWithCode(0), "");
}

TEST(HugeHeap, OffWhenTheEnvironmentSaysSo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto body = [] {
    ::setenv("THINMETA_HUGE_HEAP", "0", 1);
    std::_Exit(use_huge_heap() ? 3 : 0);
  };
  EXPECT_EXIT(body(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace thinmeta::pdata
