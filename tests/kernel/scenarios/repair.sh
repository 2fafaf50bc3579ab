# Repair in the kernel: snapchain's kernel-written metadata damaged on the host three ways
# (krepair.py): a zeroed leaf of device 1's mapping tree (with the held metadata snapshot, and
# without it) and a zeroed superblock, repaired by our thin_repair; a metadata-space-map leak repaired by our thin_check --auto-repair.
# Each result is loaded by the kernel here, every device's truth blocks are read back (the host
# requires each to hold its truth pattern, or zero where the repaired metadata lost the mapping),
# a new device is written, and the pool is removed; the host then checks the committed metadata.
# First the repair score's cases (krepair.py): each repaired image is a dm-linear slice of
# $SCORE_DISK, loaded read-only as far as the data goes (no writes: the data disk is shared).
# DISKS: leaf=16M sb=16M leak=16M nosnap=16M data=256M
# TIMEOUT: 900
# PRE: repair
# CHECK: repair
i=0
for c in $(cat /opt/files/score-list); do
  say "score case $c: slice $i of $SCORE_DISK"
  $DM create score_meta --table "0 $SCORE_SECTORS linear $SCORE_DISK $((i * SCORE_SECTORS))"
  pool_create /dev/mapper/score_meta /dev/vde 128
  grep "^$c " /opt/files/score-readback | while read _ d ranges; do
    activate $d
    $BW verify /dev/mapper/thin$d $((BSS * 512)) $WLEN $ranges > $OUT/verify-$c-$d
    deactivate $d
  done
  teardown
  $DM remove score_meta
  i=$((i + 1))
done
for c in $(cat /opt/files/cases); do
  eval dev=\$DEV_$c
  say "case $c: pool on $dev"
  pool_create $dev /dev/vde 128
  while read d ranges; do
    activate $d
    $BW verify /dev/mapper/thin$d $((BSS * 512)) $WLEN $ranges > $OUT/verify-$c-$d
    deactivate $d
  done < /opt/files/readback-$c
  [ "$(held_field)" = "-" ] || release
  create_thin 100
  W 100 50 0-9
  E 100 50 0-9
  reserve
  release
  delete_dev 100
  teardown
done
