# Merge onto an external origin (our thin_send --mapped-only / thin_receive in the real kernel):
# a thin device over an external origin (the thin target's origin argument) reads its
# unprovisioned blocks from the origin; it is written (new blocks, rewrites, a discard back to
# the origin's content); what it reads is kept. Its provisioned blocks are sent into a file;
# thin_receive refuses the origin while the thin device's table holds it; once the device is
# removed, the stream is applied to the origin, which then reads exactly as the thin device did.
# DISKS: meta=8M data=64M origin=16M
# TIMEOUT: 200
# TOOLS: thin_send thin_receive
# ENV: THIN_SECTORS=32768
# EXPECT: devices==1 held==0
set -o pipefail
export THINMETA_RECEIVE_STATE_DIR=/tmp/rstate   # what each target holds (thin_receive)
mkdir -p $THINMETA_RECEIVE_STATE_DIR
pool_create /dev/vda /dev/vdb 128
TS=/opt/bin/thin_send
TR=/opt/bin/thin_receive
$BW write /dev/vdc $((BSS * 512)) $WLEN 50 0-255
dd if=/dev/vdc of=/tmp/o.img bs=1M iflag=direct 2>/dev/null
create_thin_inactive 1
$DM create thin1 --table "0 $THIN_SECTORS thin /dev/mapper/$POOL 1 /dev/vdc"
W 1 51 5-9 100-119 255
W 1 52 7 110-114
D 1 115-119
dd if=/dev/mapper/thin1 of=/tmp/t.img bs=1M iflag=direct 2>/dev/null
cmp -s /tmp/t.img /dev/vdc && fail "the thin device reads as its origin before the merge"

$TS --mapped-only /dev/mapper/thin1 > /tmp/merge.stream || fail "thin_send --mapped-only"
[ "$(held_field)" = "-" ] || fail "thin_send left a metadata snapshot held"
if $TR /dev/vdc < /tmp/merge.stream 2>$OUT/busy.err; then fail "thin_receive wrote the origin under a live thin table"; fi
say "refused while thin 1 holds the origin: $(cat $OUT/busy.err)"
cmp /tmp/o.img /dev/vdc || fail "the refused receive changed the origin"
deactivate 1
$TR /dev/vdc < /tmp/merge.stream || fail "thin_receive onto the origin"
cmp /tmp/t.img /dev/vdc || fail "the origin differs from what thin 1 read"
say "origin equals what thin 1 read ($(stat -c %s /tmp/merge.stream) bytes of stream)"
teardown
