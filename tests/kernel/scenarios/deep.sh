# One pool with 110k+ mappings per device so the per-device trees have 3 levels; a snapshot
# of it, scattered copy-on-write writes, a discarded range, a held metadata snapshot.
# DISKS: meta=32M data=8G
# TIMEOUT: 420
# EXPECT: mappings>=200000 depth>=3 held==1
pool_create /dev/vda /dev/vdb 128 skip_block_zeroing
create_thin 1
W 1 1 0-79999
say "80000 written: $(pool_status)"
W 1 2 100000-159999/2
create_snap 2 1
W 1 3 0-99999/20
D 1 50000-50999
W 2 4 200000-200999
E 1 1 1-49999/998 51001-79999/998
E 1 2 100000-159999/1002
E 1 3 0-49999/2000 52000-99999/2000
E 2 1 1-79999/1000
Z 1 50001-50999/50
set_trans 0 1
reserve
W 1 5 300000-300499
W 2 6 0-999/5
pool_status
teardown
