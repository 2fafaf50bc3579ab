#!/usr/bin/env bash
# The main job on the bundled example: install what is missing, build, and print thin_dump of
# the example pool's live metadata and of the metadata snapshot it holds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
img=build/example.meta
zstd -q -d -f examples/pool-with-snap.meta.zst -o "$img"
echo "== thin_dump $img   (live metadata)"
build/bin/thin_dump "$img"
echo "== thin_dump -m $img   (the held metadata snapshot)"
build/bin/thin_dump -m "$img"
