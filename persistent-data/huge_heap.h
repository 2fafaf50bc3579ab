// SPDX-License-Identifier: GPL-3.0-or-later
// The heap in transparent huge pages. A warm walk's kernel time is page-cache copies and page
// faults; the faults come from the heap (reference counts, hash maps, batch buffers) touched
// 4 KiB at a time. In a VM with shadow paging each fault costs microseconds: thin_check on the
// 8m bench image took ~4000 of them, a third of its CPU. use_huge_heap() (called once at
// start, before the tool allocates much) grows the heap by kReserve at once, asks the kernel
// for huge pages there (madvise MADV_HUGEPAGE: the policy "madvise", Debian's default, honours
// it; "never" ignores it) and keeps allocations of up to 32 MiB in the heap: the same walk
// then takes ~300 faults. Only address space is reserved: what is never touched costs nothing;
// touched memory is resident in 2 MiB steps (RSS up to ~2 MiB more).
#pragma once

#include <cstddef>

namespace thinmeta::pdata {

inline constexpr std::size_t kHugeHeapReserve = std::size_t{64} << 20;

// Returns whether a range of the heap was advised. Does nothing (false) when
// $THINMETA_HUGE_HEAP is "0", or when the allocator does not grow the heap with brk
// (sanitizer builds).
bool use_huge_heap();

}  // namespace thinmeta::pdata
