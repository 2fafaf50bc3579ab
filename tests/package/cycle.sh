#!/usr/bin/env bash
# The package's install / update-initramfs / remove cycle, run in a Debian chroot so that the
# host's /usr/sbin (Debian's 0.9.0, the functional tiers' oracle) is never touched.
#   usage: bash tests/package/cycle.sh [CHROOT [DEB]]
#     CHROOT  default /work/chroot/bookworm; made with debootstrap when missing (bookworm,
#             minbase + thin-provisioning-tools, initramfs-tools, a kernel; needs the mirror)
#     DEB     default build/thinmeta_*.deb (bash scripts/package.sh)
# Shows and checks: thin_check -V before (0.9.0), `apt-get install ./thinmeta_*.deb` (the
# diversions, thin_check -V prints ours), update-initramfs -u (lsinitramfs: our thinmeta and
# thin_check link, dm-thin-pool), `apt-get remove` (diversions gone, /usr/sbin/thin_check -V
# prints 0.9.0 again, the initramfs carries Debian's thin_check again), purge, and an install
# that fails while unpacking (abort-install gives the names back). Not part of CI (needs
# debootstrap and the network); exit status 0 only if every check passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
CH=${1:-/work/chroot/bookworm}
DEB=${2:-$(ls build/thinmeta_*.deb 2>/dev/null | tail -1)}
KVER=6.1.0-56-amd64
fail() { echo "cycle: ERROR: $*" >&2; exit 1; }
[ -n "$DEB" ] && [ -f "$DEB" ] || fail "no package: run bash scripts/package.sh"
[ "$(id -u)" = 0 ] || fail "run as root (chroot)"
case $(readlink -f "$CH") in /|/usr|/usr/*|"") fail "refusing chroot $CH";; esac

if [ ! -x "$CH/usr/bin/apt-get" ]; then
  echo "cycle: debootstrap into $CH"
  debootstrap --variant=minbase --include=thin-provisioning-tools,initramfs-tools,kmod,zstd,busybox \
    bookworm "$CH" http://deb.debian.org/debian >/dev/null
fi
mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts; do
  mountpoint -q "$CH/$m" || { mount --bind "/$m" "$CH/$m"; mounted+=("$CH/$m"); }
done
ch() { chroot "$CH" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
if [ ! -d "$CH/lib/modules/$KVER" ]; then
  echo "cycle: installing linux-image-$KVER into the chroot (initramfs MODULES=list)"
  mkdir -p "$CH/etc/initramfs-tools"
  sed -i 's/^MODULES=.*/MODULES=list/' "$CH/etc/initramfs-tools/initramfs.conf"
  ch apt-get update -qq
  # the kernel package comes from the host's apt sources (the chroot may lack its suite)
  (cd "$CH/tmp" && apt-get download "linux-image-$KVER" >/dev/null)
  ch sh -c "apt-get install -y -qq --no-install-recommends /tmp/linux-image-${KVER}_*.deb" >/dev/null
  rm -f "$CH"/tmp/linux-image-*.deb
fi

failed=0 passed=0
ok() { if eval "$2"; then echo "PASS: $1"; passed=$((passed + 1)); else echo "FAIL: $1"; failed=$((failed + 1)); fi; }
show() { echo "\$ $*"; ch "$@" 2>&1 | sed 's/^/  /'; }
initrd_list() { ch lsinitramfs "/boot/initrd.img-$KVER" > "$CH/tmp/initrd.list"; cat "$CH/tmp/initrd.list"; }
initrd_has() { initrd_list >/dev/null; grep -qx "$1" "$CH/tmp/initrd.list"; }
initrd_link() {  # the target of a link in the initramfs
  local d; d=$(mktemp -d)
  ch unmkinitramfs "/boot/initrd.img-$KVER" /tmp/unpacked >/dev/null
  readlink "$CH/tmp/unpacked/$1" || true
  rm -rf "$CH/tmp/unpacked" "$d"
}
distrib_version() { ch /usr/sbin/thin_check -V 2>&1; }
ver=$(dpkg-deb -f "$DEB" Version)
ndiv=$(dpkg-deb -I "$DEB" preinst | sed -n 's/^DIVERTED="\(.*\)"$/\1/p' | wc -w)
cp "$DEB" "$CH/tmp/thinmeta.deb"

echo "== before"
ch dpkg-query -W thin-provisioning-tools
show /usr/sbin/thin_check -V
ok "Debian's thin_check is 0.9.0 before" '[ "$(distrib_version)" = 0.9.0 ]'
ch update-initramfs -u -k "$KVER" >/dev/null 2>&1

echo "== apt-get install ./$(basename "$DEB")"
show dpkg-deb -c /tmp/thinmeta.deb
show apt-get install -y /tmp/thinmeta.deb
show dpkg-divert --list '*thin_*'
show ls -l /usr/sbin/thin_check /usr/sbin/thin_check.distrib /usr/share/man/man8/thin_check.8.gz /usr/share/man/man8/thin_check.8.gz.distrib
show thin_check -V
ok "thin_check -V prints ours ($ver) once installed" '[ "$(ch thin_check -V)" = "$ver" ]'
ok "the $ndiv diversions exist" '[ "$(ch dpkg-divert --list "*thin_*" | grep -c "by thinmeta")" = "$ndiv" ] && [ "$ndiv" -ge 18 ]'
ok "Debian's thin_check kept as .distrib" '[ "$(ch readlink /usr/sbin/thin_check.distrib)" = pdata_tools ]'
ok "cache_check still Debian's" '[ "$(ch readlink /usr/sbin/cache_check)" = pdata_tools ]'
ok "man thin_check is ours" '[ "$(ch zcat /usr/share/man/man8/thin_check.8.gz | grep -c thinmeta)" -gt 0 ]'

echo "== update-initramfs -u"
show update-initramfs -u -k "$KVER"
echo "\$ lsinitramfs /boot/initrd.img-$KVER | grep -E 'thin|pdata|dm-'"
initrd_list | grep -E 'thin|pdata|dm-' | sed 's/^/  /'
ok "initramfs has usr/sbin/thinmeta" 'initrd_has usr/sbin/thinmeta'
ok "initramfs thin_check -> thinmeta" '[ "$(initrd_link usr/sbin/thin_check)" = thinmeta ]'
ok "initramfs has dm-thin-pool" 'initrd_list >/dev/null; grep -q "/dm-thin-pool.ko$" "$CH/tmp/initrd.list"'

echo "== apt-get remove thinmeta"
show apt-get remove -y thinmeta
show dpkg-divert --list '*thin_*'
show /usr/sbin/thin_check -V
ok "no diversion left after remove" '[ -z "$(ch dpkg-divert --list "*thin_*")" ]'
ok "/usr/sbin/thin_check -V prints 0.9.0 again" '[ "$(distrib_version)" = 0.9.0 ]'
ok "man thin_check is Debian's again" '[ "$(ch zcat /usr/share/man/man8/thin_check.8.gz | grep -c thinmeta)" = 0 ]'
ok "initramfs thin_check -> pdata_tools again (trigger)" '[ "$(initrd_link usr/sbin/thin_check)" = pdata_tools ]'
ok "initramfs has no thinmeta" '! initrd_has usr/sbin/thinmeta'

echo "== install + purge"
ch apt-get install -y /tmp/thinmeta.deb >/dev/null 2>&1
show apt-get purge -y thinmeta
ok "no diversion left after purge" '[ -z "$(ch dpkg-divert --list "*thin_*")" ]'
ok "thin_check -V 0.9.0 after purge" '[ "$(distrib_version)" = 0.9.0 ]'

echo "== an install that fails while unpacking (abort-install)"
# a package that owns /usr/sbin/thinmeta: dpkg refuses to overwrite it after preinst ran
blk="$CH/tmp/blocker"
rm -rf "$blk"; mkdir -p "$blk/DEBIAN" "$blk/usr/sbin"
printf 'Package: thinmeta-blocker\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: owns /usr/sbin/thinmeta\n' > "$blk/DEBIAN/control"
echo blocker > "$blk/usr/sbin/thinmeta"
dpkg-deb --root-owner-group --build "$blk" "$CH/tmp/blocker.deb" >/dev/null
ch dpkg -i /tmp/blocker.deb >/dev/null
show dpkg -i /tmp/thinmeta.deb || true
show dpkg-divert --list '*thin_*'
ok "failed install leaves no diversion" '[ -z "$(ch dpkg-divert --list "*thin_*")" ]'
ok "failed install: thin_check -V 0.9.0" '[ "$(distrib_version)" = 0.9.0 ]'
ok "failed install: package not installed" '[ "$(ch dpkg-query -W -f="\${Status}" thinmeta 2>/dev/null || true)" != "install ok installed" ]'
ch dpkg --purge thinmeta-blocker >/dev/null
rm -rf "$blk" "$CH/tmp/blocker.deb"
ch dpkg --purge thinmeta >/dev/null 2>&1 || true
rm -f "$CH/tmp/thinmeta.deb" "$CH/tmp/initrd.list"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
