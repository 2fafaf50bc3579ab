// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/huge_heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace thinmeta::pdata {

bool use_huge_heap() {
  if (const char* e = std::getenv("THINMETA_HUGE_HEAP"); e && std::strcmp(e, "0") == 0)
    return false;
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  // Each growth of the heap adds kReserve; what is freed at its top stays (up to twice that);
  // blocks up to 32 MiB (glibc's largest threshold) come from the heap, not from mappings of
  // their own (setting the pad turns off glibc's rising threshold, which used to do this).
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TOP_PAD, static_cast<int>(kHugeHeapReserve));
  ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * kHugeHeapReserve));
  // Blocks beyond the free space the heap has (a few KiB at start-up): it grows now.
  auto before = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  void* taken[16];
  int n = 0;
  while (n < 16 && reinterpret_cast<std::uintptr_t>(::sbrk(0)) == before)
    taken[n++] = std::malloc(std::size_t{1} << 20);
  auto after = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  while (n) std::free(taken[--n]);
  if (before == std::uintptr_t(-1) || after <= before) return false;
  std::uintptr_t lo = (before + kHuge - 1) & ~(kHuge - 1), hi = after & ~(kHuge - 1);
  return hi > lo && ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE) == 0;
}

}  // namespace thinmeta::pdata
