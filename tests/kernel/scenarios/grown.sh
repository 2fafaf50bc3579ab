# Metadata device grown mid-life (dm-linear over a bigger disk, reloaded larger under a
# suspended pool) so the metadata space map spans 3 bitmaps (40960 blocks > 2*16320);
# the data device grows too (16384 -> 32768 blocks, 2 data bitmaps).  A metadata snapshot is
# reserved and released afterwards.
# DISKS: meta=160M data=2G
# TIMEOUT: 300
# EXPECT: meta_nr_blocks==40960 sb_meta_nr_blocks==8192 held==0
$DM create tmeta --table "0 65536 linear /dev/vda 0"
$DM create tdata --table "0 2097152 linear /dev/vdb 0"
pool_create /dev/mapper/tmeta /dev/mapper/tdata 128 skip_block_zeroing
create_thin 1
W 1 1 0-1999
create_snap 2 1
W 1 2 0-99
say "before growing: $(pool_status)"
$DM suspend $POOL
$DM reload tmeta --table "0 327680 linear /dev/vda 0"
$DM resume tmeta
$DM reload tdata --table "0 4194304 linear /dev/vdb 0"
$DM resume tdata
$DM reload $POOL --table "0 4194304 thin-pool /dev/mapper/tmeta /dev/mapper/tdata 128 0 1 skip_block_zeroing"
$DM resume $POOL
t "grow-data 32768"
s=$(pool_status)
say "after growing: $s"
case "$s" in *"/40960 "*) ;; *) fail "metadata did not grow to 40960 blocks: $s";; esac
case "$s" in *"/32768 "*) ;; *) fail "data did not grow to 32768 blocks: $s";; esac
W 1 3 5000-6999
create_thin 3
W 3 4 0-499
reserve
W 2 5 0-99
W 1 6 7000-7099
release
D 1 5000-5099
E 1 3 5100-6999/37
E 2 5 0-99/9
teardown
$DM remove tmeta
$DM remove tdata
