#!/usr/bin/env bash
# The functional tiers under ThreadSanitizer with the worker threads on (issue 18: "TSan run of
# the functional tiers with the workers on: no report"). Configures and builds a TSan tree
# (dynamically linked, tests off), then runs every tests/functional/test_*.py (or the suites
# named) with THINMETA_BIN pointing at it and THINMETA_THREADS=2; each tool that TSan reports
# on stops with exit 66 and leaves a report file. The run fails if a suite fails, times out or a
# report file appears. Not part of scripts/test.sh or .ci/run: the build takes minutes and the
# suites run 3-10x slower than in the release build (about an hour for all of them on 2 cores).
#
# Usage: tests/tsan/run.sh [-d DIR] [-e ENGINES] [-E SUITES] [-j N] [-n] [-R] [SUITE...]
#   -d DIR      build tree (default build-tsan); reports go to DIR/tsan-reports/, the suites'
#               work files to DIR/functional/ (DIR/functional-ENGINE/ for the repeats, so two
#               runs of the script can share a build), one summary line a run to
#               DIR/tsan-summary.txt
#   -e ENGINES  also run the repeated suites with THINMETA_IO_ENGINE set to each of these
#               (comma-separated, e.g. mmap,aio; default none)
#   -E SUITES   the suites repeated under -e (comma-separated; default
#               test_check,test_dump,test_delta_ls_rmap,test_repair,test_hostile_counts)
#   -j N        build jobs (default 2)
#   -n          do not (re)build: use DIR/bin as it is
#   -R          only the repeats under -e (not the suites with the default engine)
#   SUITE...    suite names (test_dump or test_dump.py); default every functional suite
# Environment: CC/CXX pick the compiler (the default one otherwise; gcc and clang both have
# -fsanitize=thread); THINMETA_TSAN_TIMEOUT scales every suite's timeout (default 1).
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$PWD

dir=build-tsan engines= build=1 jobs=2 default_pass=1
repeat=test_check,test_dump,test_delta_ls_rmap,test_repair,test_hostile_counts
while getopts "d:e:E:j:nR" o; do
  case $o in
    d) dir=$OPTARG ;;
    e) engines=$OPTARG ;;
    E) repeat=$OPTARG ;;
    j) jobs=$OPTARG ;;
    n) build= ;;
    R) default_pass= ;;
    *) sed -n '/^# Usage/,/^# Environment/p' "$0" >&2; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
case $dir in /*) ;; *) dir=$src/$dir ;; esac

if [ -n "$build" ]; then
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHINMETA_STATIC=OFF -DTHINMETA_TESTS=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null ||
    exit 1
  cmake --build "$dir" -j"$jobs" --target thinmeta || exit 1
fi
[ -x "$dir/bin/thinmeta" ] || { echo "no $dir/bin/thinmeta: build it first (drop -n)" >&2; exit 1; }

if [ $# -gt 0 ]; then
  suites=("${@%.py}")
else
  suites=()
  for f in tests/functional/test_*.py; do suites+=("$(basename "$f" .py)"); done
fi

# Seconds a suite may take under TSan (ctest gives the release build 900). The suites that run
# our tools over the large corpus (every damaged block, every tool option) take the longest.
timeout_of() {
  local t
  case $1 in
    test_check|test_repair|test_threads) t=3600 ;;
    test_delta_ls_rmap|test_restore|test_repair_score|test_dump|test_pack) t=2400 ;;
    *) t=1800 ;;
  esac
  echo $((t * ${THINMETA_TSAN_TIMEOUT:-1}))
}

reports=$dir/tsan-reports
mkdir -p "$reports"
summary=$dir/tsan-summary.txt
echo "# $(date -u '+%F %T') $(git -C "$src" rev-parse --short HEAD 2>/dev/null)" >>"$summary"

failed=0
run_suite() {  # suite, engine ("" = the default)
  local s=$1 e=$2 tag=$1${2:+-$2} t0 rc secs line n
  local log=$dir/tsan-$tag.log work=$dir/functional${2:+-$2}
  mkdir -p "$work"
  rm -f "$reports/$tag".*
  t0=$(date +%s)
  env -u THINMETA_IO_ENGINE THINMETA_BIN="$dir/bin" THINMETA_WORK="$work" THINMETA_THREADS=2 \
    THINMETA_SANITIZER=thread ${e:+THINMETA_IO_ENGINE=$e} \
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$reports/$tag" \
    timeout "$(timeout_of "$s")" python3 "tests/functional/$s.py" >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - t0))
  line=$(grep -E "^$s: [0-9]+ checks passed" "$log" | tail -1)
  [ $rc = 124 ] && line="TIMEOUT after ${secs}s"
  n=$(find "$reports" -name "$tag.*" | wc -l)
  printf '%-28s %-6s %5ss  reports %s  %s\n' "$s" "${e:-sync}" "$secs" "$n" "${line:-exit $rc: see $log}" |
    tee -a "$summary"
  if [ "$rc" != 0 ] || [ "$n" != 0 ]; then
    failed=1
    [ "$n" != 0 ] && echo "  TSan reports: $reports/$tag.*"
    [ "$rc" != 0 ] && echo "  suite exit $rc: $log"
  fi
}

for s in "${suites[@]}"; do
  [ -n "$default_pass" ] || break
  [ -f "tests/functional/$s.py" ] || { echo "no suite tests/functional/$s.py" >&2; failed=1; continue; }
  run_suite "$s" ""
done
if [ -n "$engines" ]; then
  IFS=, read -ra es <<<"$engines"
  IFS=, read -ra rs <<<"$repeat"
  for e in "${es[@]}"; do
    for s in "${rs[@]}"; do
      s=${s%.py}
      # Only the suites asked for (all when none were named).
      if [ $# -gt 0 ] && [[ " ${suites[*]} " != *" $s "* ]]; then continue; fi
      run_suite "$s" "$e"
    done
  done
fi
[ $failed = 0 ] && echo "tsan: no report, every suite passed" || echo "tsan: FAILED (see above)"
exit $failed
