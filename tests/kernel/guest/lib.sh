# Guest-side helpers (busybox sh), prepended to every scenario script by ktest.py.
# Every action that changes the pool is performed AND appended to $OUT/truth, the ground truth
# the host replays (tests/kernel/ktest.py).  Truth lines:
#   pool <block_size_sectors> <nr_data_blocks> <write_len_bytes>
#   create <dev> | snap <new> <origin> | delete <dev> | trans <old> <new>
#   write <dev> <tag> <range>...   discard <dev> <range>...   (range: A | A-B | A-B/S)
#   reserve | release | status <pool status line> | note <text>
set -eu
DM="dmsetup --noudevsync"
BW=/bin/blkwrite
TRUTH=$OUT/truth
: > "$TRUTH"
POOL=pool
BSS=""            # data block size in sectors
WLEN=${WLEN:-4096} # bytes written per block
THIN_SECTORS=${THIN_SECTORS:-4398046511104}  # 2 PiB virtual size per thin device

t() { echo "$*" >> "$TRUTH"; }
say() { echo "== $*" >&2; }
fail() { echo "GUEST FAIL: $*" >&2; exit 1; }

# pool_create META DATA BS_SECTORS [feature...]
pool_create() {
  meta=$1; data=$2; BSS=$3; shift 3
  dsz=$(blockdev --getsz "$data")
  nblocks=$((dsz / BSS))
  $DM create $POOL --table "0 $((nblocks * BSS)) thin-pool $meta $data $BSS 0 $# $*"
  t "pool $BSS $nblocks $WLEN"
  say "pool created: $($DM status $POOL)"
}
# pool_reload META DATA [feature...]: reload the pool table (e.g. after growing meta/data)
pool_reload() {
  meta=$1; data=$2; shift 2
  dsz=$(blockdev --getsz "$data")
  nblocks=$((dsz / BSS))
  $DM suspend $POOL
  $DM reload $POOL --table "0 $((nblocks * BSS)) thin-pool $meta $data $BSS 0 $# $*"
  $DM resume $POOL
  t "grow-data $nblocks"
}
msg() { $DM message $POOL 0 "$*"; }
activate() { $DM create thin$1 --table "0 $THIN_SECTORS thin /dev/mapper/$POOL $1"; }
deactivate() { $DM remove thin$1; }
create_thin() { msg "create_thin $1"; t "create $1"; activate "$1"; }
create_thin_inactive() { msg "create_thin $1"; t "create $1"; }
# create_snap NEW ORIGIN: origin is suspended while the snapshot is taken (if active)
create_snap() {
  if [ -e /dev/mapper/thin$2 ]; then
    $DM suspend thin$2; msg "create_snap $1 $2"; $DM resume thin$2
  else
    msg "create_snap $1 $2"
  fi
  t "snap $1 $2"; activate "$1"
}
delete_dev() { [ ! -e /dev/mapper/thin$1 ] || deactivate "$1"; msg "delete $1"; t "delete $1"; }
set_trans() { msg "set_transaction_id $1 $2"; t "trans $1 $2"; }
reserve() { msg "reserve_metadata_snap"; t "reserve"; }
release() { msg "release_metadata_snap"; t "release"; }
# W DEV TAG RANGE...: write pattern TAG to the blocks
W() { d=$1; tag=$2; shift 2; $BW write /dev/mapper/thin$d $((BSS * 512)) $WLEN $tag "$@"; t "write $d $tag $*"; }
# D DEV RANGE...: discard whole blocks
D() { d=$1; shift; $BW discard /dev/mapper/thin$d $((BSS * 512)) "$@"; t "discard $d $*"; }
# E DEV TAG RANGE...: read back and require TAG (no truth change)
E() { d=$1; tag=$2; shift 2; $BW expect /dev/mapper/thin$d $((BSS * 512)) $WLEN $tag "$@"; }
# Z DEV RANGE...: read back and require unmapped/zero content
Z() {
  d=$1; shift
  bad=$($BW verify /dev/mapper/thin$d $((BSS * 512)) $WLEN "$@" | grep -v ' zero$' || true)
  [ -z "$bad" ] || fail "dev $d: expected zero blocks, got: $(echo "$bad" | head -5)"
}
# online NAME TOOL ARG...: run our TOOL (shipped in /opt/bin when the scenario has ONLINE: 1)
# against the live metadata device; it must succeed. stdout -> $OUT/online-NAME.out, and the
# command is listed in $OUT/online-cmds so the host reruns it on the final image and compares.
online() {
  n=$1; tool=$2; shift 2
  /opt/bin/$tool "$@" > $OUT/online-$n.out 2> $OUT/online-$n.err \
    || fail "online $tool $* failed (exit $?): $(cat $OUT/online-$n.err)"
  echo "$n $tool $*" >> $OUT/online-cmds
}
pool_status() { s=$($DM status $POOL); t "status $s"; echo "$s"; }
# held_field: the held-root field of the pool status (- when none)
held_field() { $DM status $POOL | awk '{print $7}'; }
# teardown: remove every thin device and the pool (the pool commits on removal)
teardown() {
  pool_status >/dev/null
  for n in $($DM ls | awk '{print $1}' | grep '^thin' || true); do $DM remove "$n"; done
  $DM remove $POOL
  say "pool removed"
}
