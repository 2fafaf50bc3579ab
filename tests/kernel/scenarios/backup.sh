# Incremental backup (README "Incremental backup", tests/kernel/backup_recipe.sh): a full copy of
# snapshot OLD (2) on a backup disk, then writes, overwrites and discards on the origin, snapshot
# NEW (3), the recipe brings the copy up to date; it must equal NEW byte for byte.  The host
# checks the delta's ranges against the ground truth (ktest.py post_backup).
# DISKS: meta=8M data=128M backup=32M
# TIMEOUT: 200
# TOOLS: thin_delta
# FILES: backup_recipe.sh
# ENV: THIN_SECTORS=65536
# POST: backup
# EXPECT: devices==3 held==0
pool_create /dev/vda /dev/vdb 128
create_thin 1
W 1 1 0-299
W 1 2 400-449
create_snap 2 1
dd if=/dev/mapper/thin2 of=/dev/vdc bs=65536 iflag=direct 2>/dev/null
say "full copy of OLD (2) on the backup disk"
W 1 3 10-29
W 1 4 10-19
W 1 5 300-349
D 1 100-149
W 1 6 120-124
D 1 440-449 460-469
W 1 7 511
W 1 8 200-299/7
create_snap 3 1
W 1 9 0-9
if cmp -s /dev/mapper/thin3 /dev/vdc; then fail "backup equals NEW before the recipe ran"; fi
DELTA_OUT=$OUT/delta.xml THIN_DELTA=/opt/bin/thin_delta DMSETUP="$DM" \
  sh /opt/files/backup_recipe.sh $POOL /dev/vda 2 3 /dev/mapper/thin3 /dev/vdc || fail "backup recipe failed"
t reserve
t release
[ "$(held_field)" = "-" ] || fail "the recipe left a metadata snapshot held"
cmp /dev/mapper/thin3 /dev/vdc || fail "backup differs from NEW (3) after the recipe"
say "backup equals NEW (3), $(blockdev --getsize64 /dev/vdc) bytes"
E 1 9 0-9
teardown
