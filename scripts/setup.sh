#!/usr/bin/env bash
# Install (as root) every Debian package the build and all test tiers need.
# Idempotent: only packages that are missing are installed.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libboost-program-options-dev libexpat1-dev libaio-dev zlib1g-dev libgtest-dev libgmock-dev googletest
  thin-provisioning-tools
  python3 xxd zstd xz-utils time afl++ clang
  qemu-system-x86 busybox-static cpio dmsetup
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
