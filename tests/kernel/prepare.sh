#!/usr/bin/env bash
# Prepare (and cache) everything the kernel test tier needs, from Debian packages:
#   cache/vmlinux          uncompressed ELF kernel (boots via PVH, faster than bzImage)
#   cache/modules/         the dm-thin module closure (uncompressed .ko) + load.order
#   cache/base.cpio        base initramfs: busybox, dmsetup + shared libs, modules, blkwrite
#   cache/bin/blkwrite     static helper (also used on the host for content checks)
#   cache/lvm2.cpio        Debian's lvm2 (binary, libraries, a udev-less lvm.conf, wrappers that
#                          log our tools' arguments) for the lvm2 scenario, appended to its guest
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
# dm-snapshot: lvm2 refuses to create thin snapshots without it
MODS_ROOTS="virtio_pci virtio_blk crc32c_generic dm-thin-pool dm-snapshot"
if [ ! -f "$CACHE/kernel.stamp" ] || [ "$(cat "$CACHE/kernel.stamp")" != "$KPKG $MODS_ROOTS" ]; then
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
  echo "$KPKG $MODS_ROOTS" > "$CACHE/kernel.stamp"
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
# 4. lvm2 for the lvm2 scenario: Debian's packages downloaded and unpacked (never installed on
# the host); libraries the host lacks come from the unpacked packages.
LVM_PKGS="lvm2 libdevmapper1.02.1 libdevmapper-event1.02.1 libaio1 libedit2 libbsd0 libmd0"
lvm_sig=$( (echo "$LVM_PKGS"; md5sum "$HERE/prepare.sh" "$HERE/guest/lvm.conf" "$HERE/guest/lvm-wrap.sh") | md5sum | cut -d' ' -f1)
if [ ! -f "$CACHE/lvm2.cpio" ] || [ "$(cat "$CACHE/lvm2.sig" 2>/dev/null)" != "$lvm_sig" ]; then
  log "downloading and unpacking $LVM_PKGS"
  ldeb="$CACHE/lvm2-deb"
  rm -rf "$ldeb"
  mkdir -p "$ldeb/x"
  # shellcheck disable=SC2086
  (cd "$ldeb" && apt-get download $LVM_PKGS >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$ldeb" && apt-get download $LVM_PKGS >/dev/null); } \
    || fail "apt-get download $LVM_PKGS failed"
  for d in "$ldeb"/*.deb; do dpkg-deb -x "$d" "$ldeb/x"; done
  x="$ldeb/x"
  [ -x "$x/sbin/lvm" ] || fail "no sbin/lvm in the lvm2 package"
  root="$CACHE/lvm2-root"
  rm -rf "$root"
  mkdir -p "$root"/{sbin,etc/lvm,opt/wrap,run/lock/lvm,run/lvm}
  cp "$x/sbin/lvm" "$root/sbin/lvm"
  for c in pvcreate pvs vgcreate vgchange vgs lvcreate lvchange lvconvert lvextend lvs lvremove lvmconfig; do
    ln -s lvm "$root/sbin/$c"
  done
  libpath="$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu"
  LD_LIBRARY_PATH=$libpath ldd "$x/sbin/lvm" | grep -q 'not found' \
    && fail "lvm needs a library neither the host nor $LVM_PKGS has: $(LD_LIBRARY_PATH=$libpath ldd "$x/sbin/lvm" | grep 'not found')"
  for lib in $(LD_LIBRARY_PATH=$libpath ldd "$x/sbin/lvm" | grep -o '/[^ ]*'); do
    # the guest path is the library's own path, wherever it was found
    case $lib in "$x"/*) dst=${lib#"$x"};; *) dst=$lib;; esac
    [ "$dst" = /lib64/ld-linux-x86-64.so.2 ] && continue   # in the base initramfs already (dmsetup)
    mkdir -p "$root$(dirname "$dst")"
    cp -L "$lib" "$root$dst"
  done
  cp "$HERE/guest/lvm.conf" "$root/etc/lvm/lvm.conf"
  for t in thin_check thin_dump thin_repair thin_restore; do
    cp "$HERE/guest/lvm-wrap.sh" "$root/opt/wrap/$t"
    chmod 755 "$root/opt/wrap/$t"
  done
  dpkg-deb -f "$(ls "$ldeb"/lvm2_*.deb)" Version > "$root/etc/lvm/lvm2-version"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$CACHE/lvm2.cpio.tmp"
  mv "$CACHE/lvm2.cpio.tmp" "$CACHE/lvm2.cpio"
  rm -rf "$ldeb" "$root"
  echo "$lvm_sig" > "$CACHE/lvm2.sig"
  log "lvm2 ready: $(du -k "$CACHE/lvm2.cpio" | cut -f1) KiB"
fi

[ -f "$CACHE/vmlinux" ] && [ -f "$CACHE/base.cpio" ] && [ -f "$CACHE/lvm2.cpio" ] || fail "cache incomplete"
exit 0
