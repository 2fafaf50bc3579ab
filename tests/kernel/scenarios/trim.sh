# thin_trim on a real block device: a pool with freed data blocks that still hold old data
# (no_discard_passdown: discards and deletions leave the data device alone), torn down; our
# thin_trim (refused while the pool is active) discards the free ranges of /dev/vdb; the pool is
# loaded again and every mapped block must read back.  Host (post_trim): every free data block
# of data.img is zero when the virtio disk supports discard, every mapped one still has data.
# DISKS: meta=4M data=64M
# TIMEOUT: 150
# TOOLS: thin_trim
# POST: trim
# EXPECT: devices==2 held==0
pool_create /dev/vda /dev/vdb 128 no_discard_passdown
create_thin 1
W 1 1 0-299
create_snap 2 1
W 1 2 100-199
create_thin 3
W 3 3 0-149
D 1 250-269
D 2 250-269
delete_dev 3
W 1 4 400-409
if /opt/bin/thin_trim --metadata-dev /dev/vda --data-dev /dev/vdb 2>$OUT/trim-live.err; then
  fail "thin_trim ran on the metadata of an active pool"
fi
say "thin_trim refused the active pool: $(cat $OUT/trim-live.err)"
teardown
nz() { $BW verify /dev/vdb $((BSS * 512)) $WLEN 0-1023 | grep -vc ' zero$' || true; }
before=$(nz)
/opt/bin/thin_trim --pool-inactive --metadata-dev /dev/vda --data-dev /dev/vdb || fail "thin_trim failed"
after=$(nz)
echo "$before $after $(cat /sys/block/vdb/queue/discard_max_bytes)" > $OUT/trim-counts
say "non-zero data blocks: $before before thin_trim, $after after"
pool_create /dev/vda /dev/vdb 128 no_discard_passdown
activate 1
activate 2
E 1 1 0-99 200-249 270-299
E 1 2 100-199
E 1 4 400-409
E 2 1 0-249 270-299
Z 1 250-269
Z 2 250-269
teardown
