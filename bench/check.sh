#!/usr/bin/env bash
# thin_check benchmark (not a test): ours vs the reference 0.9.0, full check and --skip-mappings,
# on generated pools (an origin and three snapshots sharing ~90% of their blocks, restored by
# thin_restore), median wall, CPU and peak RSS side by side. Uses bench/bench.py.
# Usage: bench/check.sh [--sizes 4m,16m] [--reps 3]   (build first: cmake --build build)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py --only check --sizes 4m,16m --reps 3 "$@"
