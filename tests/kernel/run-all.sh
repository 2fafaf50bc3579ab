#!/usr/bin/env bash
# Kernel test tier: prepare (cached), run every scenario in the real dm-thin kernel under qemu
# (TCG), check the metadata each one left, print a summary table. Exit nonzero on any failure.
#   usage: tests/kernel/run-all.sh [SCENARIO...]     (default: all of tests/kernel/scenarios)
# Env: THIN_DUMP, THINMETA_BIN, THIN_RESTORE, REF_BIN (see ktest.py). Images and results are
# kept in tests/kernel/cache/out/<scenario>/ for other test tiers.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KTEST_CACHE:-$HERE/cache}
export KTEST_CACHE=$CACHE

"$HERE/prepare.sh"

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=(example snapchain manydevs grown restore deep backup trim repair migrate shrink lvm2 send merge sendfail)
fi
start=$(date +%s)
failed=0
for s in "${scenarios[@]}"; do
  echo "=== scenario $s"
  if ! python3 "$HERE/ktest.py" run "$s"; then
    failed=$((failed + 1))
  fi
done

echo
printf '%-10s %9s %7s %6s %11s %12s %8s  %s\n' scenario mappings devices depth meta_used meta_blocks seconds result
python3 - "$CACHE/out" "${scenarios[@]}" <<'EOF'
import json, os, sys
out = sys.argv[1]
for s in sys.argv[2:]:
    p = os.path.join(out, s, "summary.json")
    if not os.path.exists(p):
        print("%-10s %9s %7s %6s %11s %12s %8s  %s" % (s, "-", "-", "-", "-", "-", "-", "FAIL (no summary)"))
        continue
    j = json.load(open(p))
    g = lambda k: j.get(k, "-")
    print("%-10s %9s %7s %6s %11s %12s %8s  %s" % (s, g("mappings"), g("devices"), g("depth"), g("meta_blocks"),
                                                g("meta_nr_blocks"), g("seconds"), j["result"]))
EOF
python3 - "$CACHE/out" "${scenarios[@]}" <<'EOF'
import json, os, sys
notes = set()
for s in sys.argv[2:]:
    p = os.path.join(sys.argv[1], s, "summary.json")
    if os.path.exists(p):
        notes.update(json.load(open(p)).get("notes", []))
for n in sorted(notes):
    print("NOTE: " + n)
EOF
echo "(depth = levels of the deepest per-device mapping tree; meta_used = allocated metadata blocks;"
echo " meta_blocks = metadata space-map size; seconds = guest boot+run time)"
total=${#scenarios[@]}
echo "total $(( $(date +%s) - start ))s"
echo "$((total - failed)) passed, $failed failed"
[ $failed -eq 0 ]
