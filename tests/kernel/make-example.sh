#!/usr/bin/env bash
# Regenerate examples/pool-with-snap.* from a real kernel run (scenario "example") and
# examples/snapchain.* (scenario "snapchain"):
#   pool-with-snap.meta.zst   4 MiB metadata device written by dm-thin, metadata snapshot HELD
#   pool-with-snap.truth      ground truth log (see tests/kernel/guest/lib.sh for the format)
#   pool-with-snap.xml        reference thin_dump of it;  pool-with-snap-m.xml  thin_dump -m
# The scenario's own checks (thin_check, dumps vs truth, data content) must pass first.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${KTEST_CACHE:-$HERE/cache}
REF_BIN=${REF_BIN:-/usr/sbin}
"$HERE/prepare.sh"
python3 "$HERE/ktest.py" run example
out=$CACHE/out/example
mkdir -p "$REPO/examples"
zstd -q -19 -f "$out/meta.img" -o "$REPO/examples/pool-with-snap.meta.zst"
cp "$out/truth" "$REPO/examples/pool-with-snap.truth"
"$REF_BIN/thin_dump" "$out/meta.img" > "$REPO/examples/pool-with-snap.xml"
"$REF_BIN/thin_dump" -m "$out/meta.img" > "$REPO/examples/pool-with-snap-m.xml"
# sanity: the committed file decompresses to an image the reference accepts
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
zstd -q -d -f "$REPO/examples/pool-with-snap.meta.zst" -o "$tmp"
"$REF_BIN/thin_check" "$tmp" >/dev/null 2>&1 || { echo "make-example: thin_check rejects the compressed image" >&2; exit 1; }
ls -l "$REPO"/examples/pool-with-snap.*
# the repair score's second image (test_repair_score.py): snapchain's two-level trees
python3 "$HERE/ktest.py" run snapchain
zstd -q -19 -f "$CACHE/out/snapchain/meta.img" -o "$REPO/examples/snapchain.meta.zst"
cp "$CACHE/out/snapchain/truth" "$REPO/examples/snapchain.truth"
ls -l "$REPO"/examples/snapchain.*
