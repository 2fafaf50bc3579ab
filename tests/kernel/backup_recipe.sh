#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Incremental backup of a thin device with thin_delta: bring BACKUP (a full copy of snapshot
# OLD_ID) up to date with the newer snapshot NEW_ID by copying only the blocks that changed.
#
# usage: backup_recipe.sh POOL TMETA OLD_ID NEW_ID NEW_DEV BACKUP
#   POOL     dm name of the thin-pool device (lvm2: vg-pool-tpool)
#   TMETA    the pool's metadata device (lvm2: /dev/mapper/vg-pool_tmeta), read while live
#   OLD_ID   thin device id of the snapshot whose content BACKUP holds now
#   NEW_ID   thin device id of the newer snapshot (nothing may write to it during the backup)
#   NEW_DEV  an active block device of NEW_ID (lvm2: lvchange -ay -K vg/new), read with O_DIRECT
#   BACKUP   file or block device holding OLD_ID's content; updated in place
# env: THIN_DELTA (default thin_delta), DMSETUP (default dmsetup), DELTA_OUT (keep the delta)
# Runs under any POSIX sh, busybox included. Exit 0 when BACKUP equals NEW_DEV's content.
#
# How: reserve a metadata snapshot (a consistent, frozen copy of the pool's trees), ask
# `thin_delta -m` which data-block ranges differ between the two snapshots, release the metadata
# snapshot, then per range:
#   <different> / <right_only>   copy the blocks from NEW_DEV (changed, or new in NEW_ID)
#   <left_only>                  zero them (mapped in OLD_ID only: NEW_ID reads zeros there)
#   <same>                       nothing to do
set -eu

[ $# -eq 6 ] || { sed -n '6,13s/^# \{0,1\}//p' "$0" >&2; exit 1; }
POOL=$1 TMETA=$2 OLD=$3 NEW=$4 NEW_DEV=$5 BACKUP=$6
THIN_DELTA=${THIN_DELTA:-thin_delta}
DMSETUP=${DMSETUP:-dmsetup}
delta=$(mktemp)
held=0

release() {
  if [ $held = 1 ]; then
    $DMSETUP message "$POOL" 0 release_metadata_snap || echo "backup: release_metadata_snap failed" >&2
    held=0
  fi
}
trap 'release; rm -f "$delta" "$delta.ranges"' EXIT
trap 'exit 1' INT TERM

# 1. freeze a view of the metadata (the pool commits first) and diff the two snapshots in it
$DMSETUP message "$POOL" 0 reserve_metadata_snap
held=1
"$THIN_DELTA" -m --snap1 "$OLD" --snap2 "$NEW" "$TMETA" > "$delta"
release
[ -z "${DELTA_OUT:-}" ] || cp "$delta" "$DELTA_OUT"

# 2. the unit of every range is a data block: data_block_size sectors of 512 bytes
sectors=$(sed -n 's/^<superblock .* data_block_size="\([0-9]*\)".*/\1/p' "$delta")
[ -n "$sectors" ] || { echo "backup: no data_block_size in the thin_delta output" >&2; exit 1; }
bs=$((sectors * 512))

# 3. apply the ranges: "KIND BEGIN LENGTH" per changed range
copied=0 zeroed=0
sed -n -E 's/^ *<(different|right_only|left_only) begin="([0-9]+)" length="([0-9]+)".*/\1 \2 \3/p' "$delta" > "$delta.ranges"
while read -r kind begin length; do
  case $kind in
    different|right_only)
      dd if="$NEW_DEV" of="$BACKUP" bs=$bs skip="$begin" seek="$begin" count="$length" \
         conv=notrunc iflag=direct 2>/dev/null
      copied=$((copied + length));;
    left_only)
      dd if=/dev/zero of="$BACKUP" bs=$bs seek="$begin" count="$length" conv=notrunc 2>/dev/null
      zeroed=$((zeroed + length));;
  esac
done < "$delta.ranges"
rm -f "$delta.ranges"
sync
echo "backup: $copied blocks copied, $zeroed blocks zeroed (block size $bs bytes)" >&2
