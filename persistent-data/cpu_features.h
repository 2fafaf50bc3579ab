// SPDX-License-Identifier: GPL-3.0-or-later
// What the CPU offers beyond the build's baseline (x86-64: SSE2), asked once at run time. Code
// compiled with __attribute__((target("avx2"))) runs only where cpu_has_avx2() is true; each
// such fast path keeps a portable loop beside it, and its unit tests run both.
#pragma once

namespace thinmeta::pdata {

inline bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace thinmeta::pdata
