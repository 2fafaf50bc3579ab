#!/usr/bin/env bash
# Boot the cached Debian kernel under qemu (TCG, never KVM) with a busybox initramfs and
# run one guest script.
#
# usage: run-guest.sh [options] GUEST_SCRIPT
#   -d FILE      attach FILE as a raw virtio disk (repeatable; /dev/vda, /dev/vdb, ... in order)
#   -b PATH      put an extra binary (plus its shared libraries) into the guest's /opt/bin;
#                a symlink (multi-call binary) is kept as a symlink to the copied target
#   -f PATH      put a file into the guest's /opt/files
#   -e VAR=VAL   export VAR to the guest script (repeatable)
#   -o DIR       output dir (required): stdout, stderr, rc, console.log, dmesg and every
#                file the guest script left in $OUT (/out) end up here
#   -t SECS      timeout for the whole boot (default 300); on expiry qemu is killed, exit 124
#   -m MB        guest memory (default 512)
#   -r MB        size of the result disk (default 256)
#   -c CPIO      append CPIO (newc) to the initramfs (repeatable; e.g. cache/lvm2.cpio)
# The guest script runs under busybox sh with: OUT=/out, DM_DISABLE_UDEV=1, PATH with
# /opt/bin first (call /opt/bin/x and /bin/blkwrite by full path: busybox applets win otherwise),
# modules loaded, /proc /sys /dev mounted. Its stdout goes to DIR/stdout, stderr to DIR/stderr.
# Exit status: the guest script's exit status; 124 on timeout; 125 if the guest produced no
# result (crash, panic); 126 if qemu could not run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KTEST_CACHE:-$HERE/cache}
die() { echo "run-guest: ERROR: $*" >&2; exit 126; }

disks=(); bins=(); files=(); envs=(); cpios=(); outdir=""; tmo=300; mem=512; rmb=256
while getopts "d:b:f:e:o:t:m:r:c:" opt; do
  case $opt in
    d) disks+=("$OPTARG");; b) bins+=("$OPTARG");; f) files+=("$OPTARG");; e) envs+=("$OPTARG");;
    o) outdir=$OPTARG;; t) tmo=$OPTARG;; m) mem=$OPTARG;; r) rmb=$OPTARG;; c) cpios+=("$OPTARG");;
    *) die "bad option (see header of $0)";;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || die "exactly one guest script expected"
script=$1
[ -f "$script" ] || die "no guest script $script"
[ -n "$outdir" ] || die "-o DIR is required"
[ -f "$CACHE/vmlinux" ] && [ -f "$CACHE/base.cpio" ] || die "cache missing: run tests/kernel/prepare.sh"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"
[ ${#disks[@]} -le 24 ] || die "too many disks"
for d in "${disks[@]}"; do [ -f "$d" ] || [ -b "$d" ] || die "no disk image $d"; done

mkdir -p "$outdir"
rm -f "$outdir"/{stdout,stderr,rc,console.log,dmesg}
tmpd=$(mktemp -d /tmp/ktest.XXXXXX)
qpid=""
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true
    sleep 0.5
    kill -9 "$qpid" 2>/dev/null || true
  fi
  rm -rf "$tmpd"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

letters=abcdefghijklmnopqrstuvwxyz
resdev=/dev/vd${letters:${#disks[@]}:1}

# --- per-run initramfs part ---
r=$tmpd/root
mkdir -p "$r/guest" "$r/opt/bin" "$r/opt/files"
cp "$script" "$r/guest/script.sh"
{
  for e in "${envs[@]+"${envs[@]}"}"; do printf 'export %q\n' "$e"; done
} > "$r/guest/env"
copy_libs() {
  local lib
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$r$(dirname "$lib")"
    [ -e "$r$lib" ] || cp -L "$lib" "$r$lib"
  done
}
for b in "${bins[@]+"${bins[@]}"}"; do
  [ -e "$b" ] || die "no binary $b"
  real=$(readlink -f "$b")
  cp "$real" "$r/opt/bin/$(basename "$real")"
  [ "$(basename "$b")" = "$(basename "$real")" ] || ln -sf "$(basename "$real")" "$r/opt/bin/$(basename "$b")"
  copy_libs "$real"
done
for f in "${files[@]+"${files[@]}"}"; do cp "$f" "$r/opt/files/"; done
cat > "$r/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/opt/bin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in \$(cat /lib/modules/load.order); do
  insmod /lib/modules/\$m || echo "GUEST: insmod \$m failed"
done
i=0; while [ ! -b $resdev ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
[ -b $resdev ] || echo "GUEST: result disk $resdev missing"
export OUT=/out DM_DISABLE_UDEV=1 RESULT_DEV=$resdev
. /guest/env
set -o pipefail
cd /tmp
# stderr goes to a file (shown live by tail): a pipe would stay open, and the guest hang, while a
# background writer of a failed scenario still holds it.
: > /out/stderr
tail -f /out/stderr &
tailpid=\$!
/bin/sh /guest/script.sh >/out/stdout 2>/out/stderr
echo \$? > /out/rc
sleep 0.2; kill \$tailpid 2>/dev/null
dmesg > /out/dmesg
tar -cf $resdev -C /out .
sync
echo "GUEST: done rc=\$(cat /out/rc)"
poweroff -f
EOF
chmod +x "$r/init" "$r/guest/script.sh"
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$tmpd/extra.cpio"
for c in "${cpios[@]+"${cpios[@]}"}"; do [ -f "$c" ] || die "no cpio $c"; done
cat "$CACHE/base.cpio" "${cpios[@]+"${cpios[@]}"}" "$tmpd/extra.cpio" > "$tmpd/initrd.cpio"

truncate -s "${rmb}M" "$tmpd/result.img"
qargs=(-accel tcg -smp 1 -m "$mem" -nographic -no-reboot -nodefaults -serial stdio
       -kernel "$CACHE/vmlinux" -initrd "$tmpd/initrd.cpio"
       -append "console=ttyS0 panic=-1 quiet no_timer_check")
for d in "${disks[@]+"${disks[@]}"}"; do
  qargs+=(-drive "file=$d,format=raw,if=virtio,cache=unsafe,discard=unmap")
done
qargs+=(-drive "file=$tmpd/result.img,format=raw,if=virtio,cache=unsafe")

start=$(date +%s)
qemu-system-x86_64 "${qargs[@]}" < /dev/null > "$outdir/console.log" 2>&1 &
qpid=$!
timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
  if [ $(( $(date +%s) - start )) -ge "$tmo" ]; then
    timed_out=1
    kill "$qpid" 2>/dev/null || true; sleep 1; kill -9 "$qpid" 2>/dev/null || true
    break
  fi
  sleep 0.2
done
qrc=0; wait "$qpid" || qrc=$?
qpid=""
if [ $timed_out = 1 ]; then
  echo "run-guest: TIMEOUT after ${tmo}s (qemu killed); console tail:" >&2
  tail -n 30 "$outdir/console.log" >&2
  exit 124
fi
if [ $qrc -ne 0 ]; then
  echo "run-guest: qemu exited with status $qrc; console tail:" >&2
  tail -n 30 "$outdir/console.log" >&2
  exit 126
fi
if ! tar -xf "$tmpd/result.img" -C "$outdir" 2>/dev/null || [ ! -f "$outdir/rc" ]; then
  echo "run-guest: guest produced no result (crash/panic?); console tail:" >&2
  tail -n 30 "$outdir/console.log" >&2
  exit 125
fi
rc=$(cat "$outdir/rc")
echo "$(( $(date +%s) - start ))" > "$outdir/seconds"
exit "$rc"
