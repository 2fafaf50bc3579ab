#!/usr/bin/env bash
# The whole test suite: installs what is missing (as root), builds, and runs every tier:
# unit (GoogleTest), functional (built binaries vs the reference tools 0.9.0), kernel (qemu +
# the real dm-thin target). Exit status 0 only if every tier passed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
echo "== unit and functional tiers"
(cd build && ctest --output-on-failure -j2 --timeout 1200)
if [ -x tests/kernel/run-all.sh ]; then
  echo "== kernel tier"
  THINMETA_BIN="$PWD/build/bin" THIN_RESTORE="$PWD/build/bin/thin_restore" bash tests/kernel/run-all.sh
else
  echo "FAIL: the kernel tier (tests/kernel/run-all.sh) is missing" >&2
  exit 1
fi
echo "== all tiers passed"
