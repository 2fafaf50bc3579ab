# Small pool (Appendix B of FORMAT.md, plus a discard and a deleted device) with a metadata
# snapshot held at the end: the source of examples/pool-with-snap.meta.zst.
# DISKS: meta=4M data=32M
# TIMEOUT: 120
# EXPECT: held==1 devices==3
pool_create /dev/vda /dev/vdb 128
set_trans 0 7
create_thin 1
W 1 1 0-9 100
create_snap 2 1
W 1 2 0-2 200
create_thin 3
create_thin 4
W 4 3 0-3
reserve
W 1 4 5 150
D 1 8
delete_dev 4
pool_status
teardown
