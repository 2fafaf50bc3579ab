#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Benchmark: thin_delta and thin_ls (all fields), ours vs the reference 0.9.0, on a pool with a
# large origin (device 1) and a snapshot (device 2) that differs in 1% of its blocks. The pool
# is generated as XML (bench/gen_pool.py) and restored with the reference thin_restore, so the
# two devices share no subtrees. Prints median wall / CPU (user+sys) / peak RSS of N runs.
# Usage: bench/delta_ls.sh [nr_mappings=10000000] [runs=5] [workdir=/tmp/thinmeta-bench]
set -euo pipefail
N=${1:-10000000}
RUNS=${2:-5}
WORK=${3:-/tmp/thinmeta-bench}
HERE=$(cd "$(dirname "$0")/.." && pwd)
OURS=${THINMETA_BIN:-$HERE/build/bin}
REF=${THINMETA_REF_BIN:-/usr/sbin}
mkdir -p "$WORK"
POOL=$WORK/pool-$N.bin
if [ ! -s "$POOL.done" ]; then
  python3 "$HERE/bench/gen_pool.py" "$N" 0.01 > "$WORK/pool-$N.xml"
  rm -f "$POOL"
  truncate -s $(( (N / 10 + 65536) * 4096 / 4 * 2 )) "$POOL"
  "$REF/thin_restore" -i "$WORK/pool-$N.xml" -o "$POOL" > /dev/null
  echo ok > "$POOL.done"
fi
FIELDS=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS
FIELDS=$FIELDS,SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED
FIELDS=$FIELDS,TRANSACTION,CREATE_TIME,SNAP_TIME
cat "$POOL" > /dev/null  # warm the page cache: both sides read cached metadata

measure() {  # tool dir args... -> "wall cpu rss" medians
  local dir=$1; shift
  local tool=$1; shift
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$dir/$tool" "$@" > "$WORK/out.$(basename "$dir")"
    cat "$WORK/time.txt"
  done | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
wall = statistics.median(r[0] for r in rows)
cpu = statistics.median(r[1] + r[2] for r in rows)
rss = statistics.median(r[3] for r in rows)
print(f"{wall:8.2f} {cpu:8.2f} {rss / 1024:8.1f}")'
}

printf "%-22s %-10s %8s %8s %8s\n" "command" "tool" "wall_s" "cpu_s" "rss_MiB"
for spec in "thin_delta --snap1 1 --snap2 2" "thin_delta --verbose --snap1 1 --snap2 2" \
            "thin_ls -o $FIELDS"; do
  set -- $spec
  tool=$1; shift
  label="$tool${2:+ $1}"
  [ "$tool" = thin_ls ] && label="thin_ls (all fields)"
  r=$(measure "$REF" "$tool" "$@" "$POOL")
  o=$(measure "$OURS" "$tool" "$@" "$POOL")
  same=$(cmp -s "$WORK/out.$(basename "$REF")" "$WORK/out.$(basename "$OURS")" && echo same || echo DIFFERENT)
  printf "%-22s %-10s %s\n%-22s %-10s %s   (output %s)\n" "$label" "0.9.0" "$r" "" "thinmeta" "$o" "$same"
done
