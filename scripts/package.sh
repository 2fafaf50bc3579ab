#!/usr/bin/env bash
# Build the Debian package build/thinmeta_<version>_<arch>.deb from this tree (dpkg-deb, no
# debhelper): the static multi-call binary and its thin_* links in /usr/sbin, the man pages,
# an initramfs-tools hook and a dracut module (both put our thin_check and dm-thin-pool into
# the initramfs), maintainer scripts that divert the thin_* names (binaries and man pages) of
# thin-provisioning-tools while installed. Runs lintian when it is installed.
#   usage: bash scripts/package.sh        (BUILD=dir to package another build directory)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${BUILD:-build}
fail() { echo "package: ERROR: $*" >&2; exit 1; }

[ -f "$BUILD/CMakeCache.txt" ] || bash scripts/build.sh
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
bin="$BUILD/bin/thinmeta"
# static: no NEEDED entry at all (static-pie keeps a dynamic section for its own relocations)
if readelf -d "$bin" | grep -q NEEDED; then
  fail "$bin needs shared libraries ($(readelf -d "$bin" | grep NEEDED | grep -o '\[.*\]' | tr '\n' ' ')): build with THINMETA_STATIC=ON"
fi

version=$("$BUILD/bin/thin_check" -V)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "thin_check -V printed '$version'"
arch=$(dpkg --print-architecture)
work="$BUILD/deb"
root="$work/root"
rm -rf "$work"
mkdir -p "$root/DEBIAN"
root=$(cd "$root" && pwd)

DESTDIR="$root" cmake --install "$BUILD" --prefix /usr >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/sbin/thinmeta"
gzip -9n "$root"/usr/share/man/man8/*.8
install -D -m 755 packaging/initramfs-tools/thinmeta "$root/usr/share/initramfs-tools/hooks/thinmeta"
install -D -m 755 packaging/dracut/module-setup.sh "$root/usr/lib/dracut/modules.d/90thinmeta/module-setup.sh"
install -D -m 644 packaging/debian/copyright "$root/usr/share/doc/thinmeta/copyright"
install -D -m 644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/thinmeta"
gitrev=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -R -d "@$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)")
sed -e "s/@VERSION@/$version/" -e "s/@GITREV@/$gitrev/" -e "s/@DATE@/$date/" \
  packaging/debian/changelog.in | gzip -9n > "$root/usr/share/doc/thinmeta/changelog.gz"

# The names taken over from thin-provisioning-tools: every thin_* link and man page we ship.
diverted=""
for f in "$root"/usr/sbin/thin_* "$root"/usr/share/man/man8/thin_*.8.gz; do
  diverted="$diverted ${f#"$root"}"
done
diverted=${diverted# }
for s in preinst postrm; do
  sed "s|@DIVERTED@|$diverted|" "packaging/debian/$s.in" > "$root/DEBIAN/$s"
  chmod 755 "$root/DEBIAN/$s"
done
install -m 644 packaging/debian/triggers "$root/DEBIAN/triggers"

find "$root" -type d -exec chmod 755 {} +
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
grep -v '^Depends: @DEPENDS@$' packaging/debian/control.in \
  | sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" > "$root/DEBIAN/control"
(cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

deb="$BUILD/thinmeta_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB; diverts: $diverted)"
if command -v lintian >/dev/null; then
  lintian --info --show-overrides "$deb" > "$work/lintian.txt" 2>&1 || true
  count() { grep -c "^$1: " "$work/lintian.txt" || true; }
  echo "package: lintian: $(count E) errors, $(count W) warnings, $(count I) info, $(count O) overridden" \
       "(explained in packaging/debian/lintian-overrides; $work/lintian.txt)"
fi
