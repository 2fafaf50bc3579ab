#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Benchmark (not a test): our thin_restore against the reference 0.9.0 on the same large XML
# (an origin and several snapshots, 10 million mappings by default). Prints wall time, CPU time
# and peak RSS side by side, and checks that both outputs dump identically.
#   bench/restore.sh [--mappings N] [--snapshots S] [--keep]
# Environment: THINMETA_BIN (default build/bin), REF_BIN (default /usr/sbin),
# BENCH_DIR (default build/bench; needs ~2.5 GiB of sparse space and the XML).
set -euo pipefail
cd "$(dirname "$0")/.."
MAPPINGS=10000000 SNAPSHOTS=4 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mappings) MAPPINGS=$2; shift 2 ;;
    --snapshots) SNAPSHOTS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--mappings N] [--snapshots S] [--keep]" >&2; exit 1 ;;
  esac
done
BIN=${THINMETA_BIN:-$PWD/build/bin}
REF=${REF_BIN:-/usr/sbin}
DIR=${BENCH_DIR:-$PWD/build/bench}
mkdir -p "$DIR"
XML=$DIR/restore-$MAPPINGS-$SNAPSHOTS.xml
if [ ! -s "$XML" ]; then
  echo "generating $XML ..."
  python3 bench/gen_xml.py --mappings "$MAPPINGS" --snapshots "$SNAPSHOTS" > "$XML.tmp"
  mv "$XML.tmp" "$XML"
fi
SIZE=$(( 2 * 1024 * 1024 * 1024 ))   # 2 GiB sparse outputs: room for 0.9.0's half-full leaves

measure() {  # measure <label> <output> <cmd...>: prints "label wall cpu rss"
  local label=$1 out=$2; shift 2
  rm -f "$out"; truncate -s "$SIZE" "$out"
  python3 - "$label" "$@" <<'PY'
import os, resource, subprocess, sys, time
label, argv = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.run(argv, stdout=subprocess.DEVNULL)
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
if p.returncode != 0:
    sys.exit(f"{label}: exit status {p.returncode}")
print(f"{label} {wall:.2f} {ru.ru_utime + ru.ru_stime:.2f} {ru.ru_maxrss / 1024:.1f}")
PY
}

echo "input: $(du -h "$XML" | cut -f1) XML, $MAPPINGS mappings, origin + $SNAPSHOTS snapshots"
ours=$(measure ours "$DIR/ours.bin" "$BIN/thin_restore" -i "$XML" -o "$DIR/ours.bin")
refr=$(measure reference "$DIR/ref.bin" "$REF/thin_restore" -q -i "$XML" -o "$DIR/ref.bin")
read -r _ ow oc orss <<<"$ours"
read -r _ rw rc rrss <<<"$refr"
printf '%-22s %12s %12s %10s\n' "" "wall (s)" "CPU (s)" "peak RSS (MiB)"
printf '%-22s %12s %12s %10s\n' "thinmeta thin_restore" "$ow" "$oc" "$orss"
printf '%-22s %12s %12s %10s\n' "0.9.0 thin_restore" "$rw" "$rc" "$rrss"
python3 -c "import sys; print(f'speed-up: {float(sys.argv[2])/float(sys.argv[1]):.1f}x wall, {float(sys.argv[4])/float(sys.argv[3]):.1f}x CPU')" "$ow" "$rw" "$oc" "$rc"
if cmp -s <("$BIN/thin_dump" "$DIR/ours.bin") <("$BIN/thin_dump" "$DIR/ref.bin"); then
  echo "outputs dump identically"
else
  echo "FAIL: the two outputs dump differently" >&2; exit 1
fi
[ "$KEEP" = 1 ] || rm -f "$DIR/ours.bin" "$DIR/ref.bin"
