# thin_migrate (our build) in the real kernel: snapshot BASE (2) and NEW (3) of thin 1, read-only.
# Full copies and --delta-id 2 copies onto a block device, onto a thin device of the pool
# (stays thin: zeroing is a discard there) and onto files (new, and an existing larger one of
# junk, resized), each compared with the source by cmp; a thin device over an external origin
# smaller than itself; a writable source refused; a metadata snapshot the pool holds already
# is used and kept, one that predates the source is refused; no snapshot left held after any
# run, SIGTERM included. Devices written by thin_migrate in the pool (10) are deleted before
# the end so that the truth log stays the pool's ground truth.
# DISKS: meta=8M data=64M dest=16M origin=8M
# TIMEOUT: 240
# TOOLS: thin_migrate
# ENV: THIN_SECTORS=32768
# EXPECT: devices==5 held==0
pool_create /dev/vda /dev/vdb 128
$BW write /dev/vdd $((BSS * 512)) $WLEN 50 0-127   # the external origin of step 4
TM=/opt/bin/thin_migrate
NB=256   # blocks per thin device (16 MiB)
activate_ro() { $DM create thin$1 --readonly --table "0 $THIN_SECTORS thin /dev/mapper/$POOL $1 ${2:-}"; }
mapped() { echo $(( $($DM status thin$1 | awk '{print $4}') / BSS )); }
no_hold() { [ "$(held_field)" = "-" ] || fail "a metadata snapshot is still held after: $*"; }
same() { cmp "$1" "$2" || fail "$3: $1 differs from $2"; say "equal: $3 (uptime $(cut -d' ' -f1 /proc/uptime))"; }

create_thin 1
W 1 1 0-199
W 1 2 220-239
create_snap 2 1
W 1 3 10-29
W 1 4 200-219
D 1 100-149
W 1 6 120-124
D 1 230-234 240-244
W 1 7 255
W 1 8 150-199/7
create_snap 3 1
W 1 9 0-9
deactivate 2; activate_ro 2
deactivate 3; activate_ro 3

# a writable source is refused (1.3.3: the source must be read-only), nothing held after
if $TM --source-dev /dev/mapper/thin1 --dest-file /tmp/x.img 2>$OUT/rw.err; then fail "writable source accepted"; fi
say "refused: $(cat $OUT/rw.err)"; no_hold "refused writable source"
[ ! -e /tmp/x.img ] || fail "a refused run created its destination file"

# 1. block device: junk first, full copy of BASE, then the delta BASE -> NEW
$BW write /dev/vdc $((BSS * 512)) $WLEN 99 0-$((NB - 1))
$TM --source-dev /dev/mapper/thin2 --dest-dev /dev/vdc || fail "full migrate onto /dev/vdc"
no_hold "full migrate to device"; same /dev/mapper/thin2 /dev/vdc "full 2 -> device"
$TM --source-dev /dev/mapper/thin3 --delta-id 2 --dest-dev /dev/vdc --buffer-size-meg 1 --progress || fail "delta migrate onto /dev/vdc"
no_hold "delta migrate to device"; same /dev/mapper/thin3 /dev/vdc "delta 2..3 -> device"

# 2. files: a new one (full BASE, delta NEW); an existing larger junk file (full NEW, resized)
$TM --source-dev /dev/mapper/thin2 --dest-file /tmp/f.img -q || fail "full migrate to a new file"
same /dev/mapper/thin2 /tmp/f.img "full 2 -> new file"
$TM --source-dev /dev/mapper/thin3 --delta-id 2 --dest-file /tmp/f.img || fail "delta migrate to a file"
same /dev/mapper/thin3 /tmp/f.img "delta 2..3 -> file"; no_hold "file migrations"
dd if=/dev/vdd of=/tmp/j.img bs=1M count=8 2>/dev/null              # 20 MiB of junk
dd if=/dev/vdd of=/tmp/j.img bs=1M seek=12 count=8 conv=notrunc 2>/dev/null
$TM --source-dev /dev/mapper/thin3 --dest-file /tmp/j.img || fail "full migrate over a junk file"
[ "$(stat -c %s /tmp/j.img)" = $((THIN_SECTORS * 512)) ] || fail "junk file not resized: $(stat -c %s /tmp/j.img)"
same /dev/mapper/thin3 /tmp/j.img "full 3 -> existing junk file"
rm -f /tmp/f.img /tmp/j.img

# 3. onto a thin device of the pool holding junk where NEW is unmapped: stays thin
create_thin 10
W 10 98 0-$((NB - 1))/3
$TM --source-dev /dev/mapper/thin3 --dest-dev /dev/mapper/thin10 || fail "full migrate onto thin 10"
same /dev/mapper/thin3 /dev/mapper/thin10 "full 3 -> thin 10"
[ "$(mapped 10)" -le "$(mapped 3)" ] || fail "thin 10 maps $(mapped 10) blocks, the source $(mapped 3)"
say "thin 10 maps $(mapped 10) blocks, the source $(mapped 3)"
delete_dev 10

# 4. external origin (8 MiB, the thin device 16 MiB: past the origin it reads zeros)
create_thin_inactive 20
$DM create thin20 --table "0 $THIN_SECTORS thin /dev/mapper/$POOL 20 /dev/vdd"
W 20 51 5-9 120-129 200
deactivate 20; activate_ro 20 /dev/vdd
$TM --source-dev /dev/mapper/thin20 --dest-file /tmp/o.img || fail "migrate of a thin device over an origin"
same /dev/mapper/thin20 /tmp/o.img "thin 20 over its external origin -> file"
rm -f /tmp/o.img; no_hold "origin migration"

# 5. a snapshot the pool holds already: used, kept; one that predates the source: refused
reserve
h=$(held_field)
$TM --source-dev /dev/mapper/thin3 --dest-file /tmp/h.img || fail "migrate with a held snapshot"
[ "$(held_field)" = "$h" ] || fail "the pool's own metadata snapshot was released (was $h, now $(held_field))"
same /dev/mapper/thin3 /tmp/h.img "full 3 -> file, with the pool's snapshot"
create_snap 4 1
deactivate 4; activate_ro 4
if $TM --source-dev /dev/mapper/thin4 --dest-file /tmp/p.img 2>$OUT/predates.err; then fail "snapshot predating thin 4 used"; fi
grep -q predates $OUT/predates.err || fail "predates: $(cat $OUT/predates.err)"
say "refused: $(cat $OUT/predates.err)"
release
no_hold "release"
rm -f /tmp/h.img /tmp/p.img

# 6. SIGTERM while it holds the snapshot: the destination is a linear device over /dev/vdc,
#    suspended before the run, so the copy waits in its writes with the snapshot held (whatever
#    the machine's speed); the signal then lands during the copy: exit 1, "released", nothing
#    held once it has exited (the device resumed).
$DM create slowdest --table "0 $THIN_SECTORS linear /dev/vdc 0"
$DM suspend slowdest
$TM --source-dev /dev/mapper/thin3 --dest-dev /dev/mapper/slowdest --buffer-size-meg 1 2>$OUT/term.err &
pid=$!
i=0; while [ "$(held_field)" = "-" ] && [ $i -lt 1000 ] && kill -0 $pid 2>/dev/null; do i=$((i + 1)); done
if [ "$(held_field)" = "-" ]; then
  rc=0; kill -0 $pid 2>/dev/null && { kill -KILL $pid; rc=killed; }; wait $pid || rc=$?
  $DM resume slowdest
  fail "thin_migrate never held the snapshot while its destination was suspended (exit $rc): $(cat $OUT/term.err)"
fi
kill -TERM $pid
i=0; while [ "$(held_field)" != "-" ] && [ $i -lt 1000 ]; do i=$((i + 1)); done
$DM resume slowdest
rc=0; wait $pid || rc=$?
no_hold "SIGTERM during the copy (exit $rc)"
[ $rc -eq 1 ] || fail "exit status $rc after SIGTERM during the copy: $(cat $OUT/term.err)"
grep -q "metadata snapshot released" $OUT/term.err || fail "SIGTERM: $(cat $OUT/term.err)"
say "SIGTERM during the copy: $(cat $OUT/term.err)"
$DM remove slowdest
E 1 9 0-9
teardown
