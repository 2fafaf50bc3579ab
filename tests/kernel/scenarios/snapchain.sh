# Origin with a chain of snapshots, a snapshot of a snapshot, a deleted middle link, then a
# HELD metadata snapshot followed by more changes (writes that break sharing, overwrites in
# place, discards, a new device, a deleted device).  An online `thin_dump -m` runs while a
# writer hammers the origin.  The snapshot stays held when the guest stops.
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

# online check: thin_dump -m against the live metadata device while a writer runs
rm -f /tmp/stop
$BW loop /dev/mapper/thin1 65536 $WLEN 7 400 64 /tmp/stop > /tmp/loopcount &
wpid=$!
sleep 1
echo 3 > /proc/sys/vm/drop_caches
$ONLINE_DUMP -m /dev/vda > $OUT/online-m.xml 2> $OUT/online-m.err || fail "online thin_dump -m failed: $(cat $OUT/online-m.err)"
touch /tmp/stop
wait $wpid
n=$(cat /tmp/loopcount)
say "online writer did $n writes"
[ "$n" -ge 64 ] || fail "online writer did only $n writes (< 64)"
t "write 1 7 400-463"
E 1 7 400-463

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
