# thin_shrink (our build) in the real kernel: a pool whose data is spread over its whole data
# device (1024 blocks: thin 1 written almost full, snapshot 2 breaks sharing at the top, every
# other run of 16 blocks discarded from both) is torn down; thin_shrink --binary moves the data blocks
# >= 512 into the free blocks below (data copied on /dev/vdb) writing new metadata on /dev/vdc;
# the XML form (ours thin_dump -> thin_shrink --no-copy -> thin_restore) writes the same pool
# back onto /dev/vda (both dumps must be equal); a size the mapped blocks do not fit is refused.
# The data device is then cut to 512 blocks (a smaller linear table over /dev/vdb), the pool
# is loaded on it and every thin device reads back its content. Host (post_shrink): before the
# shrink blocks >= 512 were mapped, afterwards none; the same virtual blocks and times.
# DISKS: meta=4M data=64M meta2=4M
# TIMEOUT: 240
# TOOLS: thin_shrink thin_dump thin_restore
# POST: shrink
# EXPECT: devices==3 held==0
pool_create /dev/vda /dev/vdb 128
# Virtual blocks 100-959 in runs of 16: KEEP 100-115, 132-147, ...; DROP 116-131, 148-163, ...
KEEP=""; DROP=""; b=100
while [ $b -lt 960 ]; do
  KEEP="$KEEP $b-$((b + 15))"
  e=$((b + 31)); [ $e -lt 960 ] || e=959
  DROP="$DROP $((b + 16))-$e"
  b=$((b + 32))
done
create_thin 1
W 1 1 0-959
create_snap 2 1
W 2 2 0-39
D 1 0-99 $DROP
D 2 40-79 $DROP
create_thin 3
W 3 3 0-9
teardown
/opt/bin/thin_dump /dev/vda > $OUT/before.xml || fail "thin_dump before the shrink"
if /opt/bin/thin_shrink --binary -i /dev/vda -o /dev/vdc --data /dev/vdb --nr-blocks 300 \
    2>$OUT/refused.err; then
  fail "thin_shrink accepted a size the mapped blocks do not fit"
fi
say "refused: $(cat $OUT/refused.err)"
/opt/bin/thin_shrink --binary -i /dev/vda -o /dev/vdc --data /dev/vdb --nr-blocks 512 \
  || fail "thin_shrink --binary failed"
/opt/bin/thin_shrink -i $OUT/before.xml -o /tmp/after.xml --no-copy --nr-blocks 512 \
  || fail "thin_shrink (XML) failed"
/opt/bin/thin_restore -i /tmp/after.xml -o /dev/vda || fail "thin_restore of the shrunk XML failed"
/opt/bin/thin_dump /dev/vda > /tmp/a.xml
/opt/bin/thin_dump /dev/vdc > /tmp/b.xml
cmp /tmp/a.xml /tmp/b.xml || fail "the XML and --binary forms of thin_shrink differ"
$DM create small --table "0 $((512 * 128)) linear /dev/vdb 0"
pool_create /dev/vda /dev/mapper/small 128
activate 1
activate 2
activate 3
E 1 1 $KEEP
Z 1 0-99 $DROP
E 2 2 0-39
E 2 1 80-99 $KEEP
Z 2 40-79 $DROP
E 3 3 0-9
teardown
$DM remove small
