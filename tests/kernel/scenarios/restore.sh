# Kernel-accepts-restore: metadata written by THIN_RESTORE from a generated XML (ktest.py
# pre_restore; data image pre-filled with the matching patterns) is loaded by the kernel,
# every device is read back, then modified, a metadata snapshot reserved and released.
# DISKS: meta=8M data=512M
# TIMEOUT: 300
# PRE: restore
# EXPECT: devices==6 held==0
pool_create /dev/vda /dev/vdb 128
for id in 1 2 5 9 16777215; do activate $id; done
E 1 21 0-1199
E 2 21 0-599
E 2 22 600-1199
E 5 25 10000-14893/7
E 9 29 1000000000
Z 5 10001-10006
Z 16777215 0-9
Z 2 1200-1210
W 2 30 0-99
W 1 31 0-49 1190-1209
create_thin 3
W 3 32 0-99
create_snap 4 5
W 4 33 10000-10069/7
reserve
W 5 34 10000-10699/7
release
delete_dev 9
E 2 30 0-99
E 1 31 0-49
E 1 21 50-599
E 2 21 100-599
E 4 33 10000-10069/7
E 4 25 10070-14893/7
E 5 34 10000-10699/7
set_trans 3 4
teardown
