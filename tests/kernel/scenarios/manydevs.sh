# Many thin devices (150, 50 of them written) with ids up to 16777215, deletions, id reuse, snapshots into large ids,
# several set_transaction_id steps.  Data block size 2048 sectors (1 MiB).
# DISKS: meta=8M data=2G
# TIMEOUT: 300
# EXPECT: devices>=140 mappings>=200
pool_create /dev/vda /dev/vdb 2048 skip_block_zeroing
set_trans 0 10
ids="$(seq 0 39) 1000 4095 65535 65536 1048575 8388608 16777212 16777213 16777214 16777215"
k=0
for id in $ids; do
  create_thin $id
  W $id $((100 + k)) $k-$((k + 3)) $((1000 + k * 10))
  deactivate $id
  k=$((k + 1))
done
# 100 more, empty and never activated: the details tree (126 per leaf) gets 2 levels
for id in $(seq 100000 100099); do create_thin_inactive $id; done
set_trans 10 11
say "created $k devices: $(pool_status)"
for id in 3 5 7 9 11 20 21 22 23 1000 65536 16777214 16777213 38 39; do delete_dev $id; done
set_trans 11 12
# reuse deleted ids with different content
k=0
for id in 3 9 21 65536 16777214; do
  create_thin $id
  W $id $((300 + k)) $((k * 2))-$((k * 2 + 5))
  deactivate $id
  k=$((k + 1))
done
# snapshots of inactive origins into large ids, then diverge
create_snap 16777213 16777215
W 16777213 400 0-1
create_snap 2000000 16777213
activate 16777215
W 16777215 401 1 1049
deactivate 16777213; deactivate 2000000
activate 0
D 0 1-2
E 0 100 0 3
Z 0 1-2
set_trans 12 13
teardown
