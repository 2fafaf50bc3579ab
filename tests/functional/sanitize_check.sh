#!/usr/bin/env bash
# The thin_check damage corpus under ASan + UBSan: configures and builds build-asan/ (the
# THINMETA_SANITIZE option) and runs tests/functional/test_check.py against it with
# THINMETA_DAMAGE_ONLY=1. Any sanitizer report, crash or hang fails the run. Not part of ctest
# (building the sanitizer tree alone takes minutes on two cores).
# Usage: tests/functional/sanitize_check.sh [build dir, default build-asan]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build-asan}
cmake -S . -B "$dir" -DTHINMETA_SANITIZE=ON -DTHINMETA_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j2 --target thinmeta
export ASAN_OPTIONS=exitcode=99:detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:exitcode=98:print_stacktrace=1
THINMETA_BIN="$PWD/$dir/bin" THINMETA_WORK="$PWD/$dir/functional" THINMETA_DAMAGE_ONLY=1 \
  python3 tests/functional/test_check.py
