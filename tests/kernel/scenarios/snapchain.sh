# Origin with a chain of snapshots, a snapshot of a snapshot, a deleted middle link, then a
# HELD metadata snapshot followed by more changes (writes that break sharing, overwrites in
# place, discards, a new device, a deleted device).  Our thin_dump/thin_ls/thin_delta/thin_check
# -m run online while writers hammer the origin.  The snapshot stays held when the guest stops.
# DISKS: meta=16M data=256M
# TIMEOUT: 240
# ONLINE: 1
pool_create /dev/vda /dev/vdb 128
set_trans 0 1
create_thin 1
W 1 1 0-299
D 1 50-59
create_snap 2 1
W 1 2 0-19 300-349
create_snap 3 1
W 1 3 10-29
W 3 4 100-109 280-289
create_snap 4 3
W 4 5 0-4 1000-1003
create_snap 5 2
W 5 6 60-69
delete_dev 2
create_thin 6
set_trans 1 2
E 1 3 10-29
E 3 4 100-109
E 4 1 30-49
Z 4 50-59
reserve
say "held root: $(held_field)"
[ "$(held_field)" != "-" ] || fail "no held root after reserve_metadata_snap"
if msg reserve_metadata_snap 2>/dev/null; then fail "second reserve_metadata_snap succeeded"; fi
say "second reserve refused, as expected"

# online check: our tools against the live metadata device while two writers run: one
# rewrites blocks in place, the other provisions and discards a range (each round commits, so
# live metadata blocks are freed and reused under the tools).  Three rounds of every tool.
rm -f /tmp/stop
$BW loop /dev/mapper/thin1 65536 $WLEN 7 400 64 /tmp/stop > /tmp/loopcount &
wpid=$!
( i=0; while [ ! -f /tmp/stop ]; do
    $BW write /dev/mapper/thin1 65536 $WLEN 12 500-599 || exit 1
    $BW discard /dev/mapper/thin1 65536 500-599 || exit 1
    i=$((i + 1)); done; echo $i > /tmp/churncount ) &
cpid=$!
sleep 1
echo 3 > /proc/sys/vm/drop_caches
for r in 1 2 3; do
  online dump-m$r thin_dump -m /dev/vda
  online ls-m$r thin_ls -m /dev/vda
  online lsall-m$r thin_ls -m --no-headers -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,TRANSACTION,CREATE_TIME,SNAP_TIME /dev/vda
  online lshigh-m$r thin_ls -m -o DEV,HIGHEST_BLOCK,HIGHEST_SECTOR,HIGHEST_BYTE,HIGHEST_MAPPED /dev/vda
  online delta13-m$r thin_delta -m --snap1 1 --snap2 3 /dev/vda
  online delta34v-m$r thin_delta -m --verbose --snap1 3 --snap2 4 /dev/vda
  online delta51-m$r thin_delta -m --snap1 5 --snap2 1 /dev/vda
  [ ! -x /opt/bin/thin_check ] || online check-m$r thin_check -m /dev/vda
done
cp $OUT/online-dump-m1.out $OUT/online-m.xml
touch /tmp/stop
wait $wpid
wait $cpid || fail "churn writer failed"
n=$(cat /tmp/loopcount)
say "online writers did $n writes and $(cat /tmp/churncount) write+discard rounds"
[ "$n" -ge 64 ] || fail "online writer did only $n writes (< 64)"
[ "$(cat /tmp/churncount)" -ge 1 ] || fail "churn writer did no round"
t "write 1 7 400-463"
E 1 7 400-463
t "write 1 12 500-599"
t "discard 1 500-599"
Z 1 500-599

# changes after the reservation
W 1 8 0-9 290-295
W 1 9 295-299
D 1 200-219
W 3 10 290-310
create_thin 7
W 7 11 0-9
delete_dev 4
set_trans 2 3
E 1 8 0-9
E 3 1 200-219
Z 1 200-219
pool_status
teardown
