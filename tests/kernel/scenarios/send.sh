# thin_send / thin_receive (our build) in the real kernel: incremental backup and replication.
# Thin 1 written, snapshot 2, writes and discards on 1, snapshot 3, more, snapshot 4. A full
# stream of 2 into a new file, then the incremental streams 2->3 and 3->4 applied to it: the file
# equals each snapshot in turn (cmp), while a writer keeps rewriting thin 1 during every send.
# The same streams (kept with tee) applied to a thin device of a second pool that holds junk
# first: it equals 4 and stays thin (mapped blocks at most 4's + 16). No metadata snapshot is
# left held after any send.
# DISKS: meta=8M data=64M meta2=8M data2=64M
# TIMEOUT: 240
# TOOLS: thin_send thin_receive
# ENV: THIN_SECTORS=32768
# EXPECT: devices==4 held==0
set -o pipefail
export THINMETA_RECEIVE_STATE_DIR=/tmp/rstate   # what each target holds (thin_receive)
mkdir -p $THINMETA_RECEIVE_STATE_DIR
pool_create /dev/vda /dev/vdb 128
TS=/opt/bin/thin_send
TR=/opt/bin/thin_receive
mapped_of() { echo $(( $($DM status $1 | awk '{print $4}') / BSS )); }
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
D 1 230-234
create_snap 3 1
W 1 7 255
W 1 8 150-199/7
D 1 0-9
W 1 5 240-249
create_snap 4 1

# --- backup into a file, a writer rewriting thin 1 (blocks 0-63) all along
rm -f /tmp/stop
$BW loop /dev/mapper/thin1 $((BSS * 512)) $WLEN 20 0 64 /tmp/stop > /tmp/loopcount &
wpid=$!
$TS /dev/mapper/thin2 | tee /tmp/s2 | $TR /tmp/backup.img || fail "full stream of 2 into a new file"
no_hold "full send"; same /dev/mapper/thin2 /tmp/backup.img "full stream of 2 -> file"
$TS /dev/mapper/thin2 /dev/mapper/thin3 | tee /tmp/s23 | $TR /tmp/backup.img || fail "stream 2->3"
no_hold "incremental send 2->3"; same /dev/mapper/thin3 /tmp/backup.img "2->3 applied to the file"
$TS /dev/mapper/thin3 /dev/mapper/thin4 | tee /tmp/s34 | $TR /tmp/backup.img || fail "stream 3->4"
no_hold "incremental send 3->4"; same /dev/mapper/thin4 /tmp/backup.img "3->4 applied to the file"
sleep 1
touch /tmp/stop
wait $wpid || fail "writer failed"
n=$(cat /tmp/loopcount)
[ "$n" -ge 64 ] || fail "the writer did only $n writes (< 64)"
say "the writer rewrote thin 1 $n times during the sends"
t "write 1 20 0-63"
E 1 20 0-63
say "streams: full $(stat -c %s /tmp/s2) bytes, 2->3 $(stat -c %s /tmp/s23), 3->4 $(stat -c %s /tmp/s34)"
[ "$(stat -c %s /tmp/s23)" -lt "$(stat -c %s /tmp/s2)" ] || fail "the incremental stream is not smaller than the full one"

# --- replication: the same streams onto a thin device of a second pool holding junk
$DM create pool2 --table "0 $(( $(blockdev --getsz /dev/vdd) / BSS * BSS )) thin-pool /dev/vdc /dev/vdd $BSS 0 0"
$DM message pool2 0 "create_thin 1"
$DM create rep1 --table "0 $THIN_SECTORS thin /dev/mapper/pool2 1"
$BW write /dev/mapper/rep1 $((BSS * 512)) $WLEN 90 0-255/2
$TR /dev/mapper/rep1 < /tmp/s2 || fail "full stream onto the replica"
same /dev/mapper/thin2 /dev/mapper/rep1 "full stream of 2 -> replica over junk"
$TR /dev/mapper/rep1 < /tmp/s23 || fail "2->3 onto the replica"
$TR /dev/mapper/rep1 < /tmp/s34 || fail "3->4 onto the replica"
same /dev/mapper/thin4 /dev/mapper/rep1 "2->3, 3->4 applied to the replica"
m4=$(mapped_of thin4); mr=$(mapped_of rep1)
say "replica maps $mr blocks, snapshot 4 maps $m4"
[ "$mr" -le $((m4 + 16)) ] || fail "the replica is not thin: $mr mapped blocks, the source $m4"
$DM remove rep1
$DM remove pool2
teardown
