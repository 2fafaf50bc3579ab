#!/usr/bin/env bash
# Prepare (and cache) everything the kernel test tier needs, from Debian packages:
#   cache/vmlinux          uncompressed ELF kernel (boots via PVH, faster than bzImage)
#   cache/modules/         the dm-thin module closure (uncompressed .ko) + load.order
#   cache/base.cpio        base initramfs: busybox, dmsetup + shared libs, modules, blkwrite
#   cache/bin/blkwrite     static helper (also used on the host for content checks)
# Idempotent: a second run only checks stamps (< 1 s).
set -euo pipefail

KVER=6.1.0-56-amd64
KPKG=linux-image-$KVER
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${KTEST_CACHE:-$HERE/cache}
mkdir -p "$CACHE"

log() { echo "prepare: $*" >&2; }
fail() { echo "prepare: ERROR: $*" >&2; exit 1; }

# 0. host packages (same list as the repo's setup script)
need_setup=0
for c in qemu-system-x86_64 cpio dmsetup gcc xz zstd python3 /usr/sbin/thin_dump /bin/busybox; do
  command -v "$c" >/dev/null 2>&1 || need_setup=1
done
if [ $need_setup = 1 ]; then
  log "installing host packages via scripts/setup.sh"
  bash "$REPO/scripts/setup.sh"
fi
ldd /bin/busybox >/dev/null 2>&1 && fail "/bin/busybox is dynamically linked (need busybox-static)"

# 1. kernel + modules from the Debian package
MODS_ROOTS="virtio_pci virtio_blk crc32c_generic dm-thin-pool"
if [ ! -f "$CACHE/kernel.stamp" ] || [ "$(cat "$CACHE/kernel.stamp")" != "$KPKG" ]; then
  log "downloading $KPKG"
  rm -rf "$CACHE/deb" "$CACHE/modules" "$CACHE/vmlinux"
  mkdir -p "$CACHE/deb"
  (cd "$CACHE/deb" && apt-get download "$KPKG" >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$CACHE/deb" && apt-get download "$KPKG" >/dev/null); } \
    || fail "apt-get download $KPKG failed"
  deb=$(ls "$CACHE"/deb/*.deb)
  dpkg-deb -x "$deb" "$CACHE/deb/x"
  vmlinuz="$CACHE/deb/x/boot/vmlinuz-$KVER"
  [ -f "$vmlinuz" ] || fail "no $vmlinuz in package"

  # extract-vmlinux: find a compressed payload that decompresses to an ELF image
  log "extracting vmlinux"
  ok=0
  for spec in 'xz:\xfd\x37\x7a\x58\x5a\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
    tool=${spec%%:*}; magic=${spec#*:}
    for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" 2>/dev/null | cut -d: -f1); do
      tail -c +$((off + 1)) "$vmlinuz" | $tool -dc 2>/dev/null > "$CACHE/vmlinux.tmp" || true
      if [ -s "$CACHE/vmlinux.tmp" ] && head -c 4 "$CACHE/vmlinux.tmp" | grep -q ELF; then
        ok=1; break 2
      fi
    done
  done
  [ $ok = 1 ] || fail "could not extract vmlinux from $vmlinuz"
  mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"

  # module closure, dependency order from each module's own modinfo 'depends='
  mdir="$CACHE/deb/x/lib/modules/$KVER"
  mkdir -p "$CACHE/modules"
  declare -A seen=()
  order=()
  modpath() { find "$mdir" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" | head -1; }
  readko() { case "$1" in *.xz) xz -dc "$1";; *.zst) zstd -qdc "$1";; *) cat "$1";; esac; }
  visit() {
    local m=$1 f deps d
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    f=$(modpath "$m"); [ -n "$f" ] || f=$(modpath "${m//_/-}"); [ -n "$f" ] || f=$(modpath "${m//-/_}")
    [ -n "$f" ] || fail "module $m not found in $KPKG"
    deps=$(readko "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -1)
    # libcrc32c needs the "crc32c" crypto algorithm (softdep), which we provide with crc32c_generic
    for d in ${deps//,/ }; do visit "$d"; done
    readko "$f" > "$CACHE/modules/$(basename "${f%.xz}" | sed 's/\.zst$//')"
    order+=("$(basename "${f%.xz}" | sed 's/\.zst$//')")
  }
  for m in $MODS_ROOTS; do visit "$m"; done
  printf '%s\n' "${order[@]}" > "$CACHE/modules/load.order"
  rm -rf "$CACHE/deb"
  echo "$KPKG" > "$CACHE/kernel.stamp"
  log "kernel ready: $(tr '\n' ' ' < "$CACHE/modules/load.order")"
fi

# 2. static helper
mkdir -p "$CACHE/bin"
if [ ! -x "$CACHE/bin/blkwrite" ] || [ "$HERE/helpers/blkwrite.c" -nt "$CACHE/bin/blkwrite" ]; then
  log "building blkwrite"
  gcc -static -O2 -Wall -Wextra -o "$CACHE/bin/blkwrite" "$HERE/helpers/blkwrite.c"
fi

# 3. base initramfs (busybox, dmsetup + libs, modules, blkwrite). Rebuilt when an input changes.
inputs_sig=$( (cat "$CACHE/kernel.stamp"; md5sum /bin/busybox /sbin/dmsetup "$CACHE/bin/blkwrite" "$HERE/prepare.sh") | md5sum | cut -d' ' -f1)
if [ ! -f "$CACHE/base.cpio" ] || [ "$(cat "$CACHE/base.sig" 2>/dev/null)" != "$inputs_sig" ]; then
  log "building base initramfs"
  root="$CACHE/root"
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,out,opt/bin,lib/modules,mnt}
  cp /bin/busybox "$root/bin/busybox"
  cp "$CACHE/bin/blkwrite" "$root/bin/blkwrite"
  cp /sbin/dmsetup "$root/sbin/dmsetup"
  for lib in $(ldd /sbin/dmsetup | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp "$CACHE"/modules/*.ko "$CACHE/modules/load.order" "$root/lib/modules/"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$CACHE/base.cpio.tmp"
  mv "$CACHE/base.cpio.tmp" "$CACHE/base.cpio"
  echo "$inputs_sig" > "$CACHE/base.sig"
fi
[ -f "$CACHE/vmlinux" ] && [ -f "$CACHE/base.cpio" ] || fail "cache incomplete"
exit 0
