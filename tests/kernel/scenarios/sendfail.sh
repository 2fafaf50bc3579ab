# thin_send / thin_receive refusals and interruptions in the real kernel: a stream applied onto
# the wrong base is refused and changes nothing; a stream with one flipped byte stops with an
# error and a resume token, and a stream cut in half likewise; `thin_send --resume TOKEN` then
# finishes each (cmp). No metadata snapshot is left held after any send: broken pipe, full
# output (stdout and -o), SIGTERM and SIGHUP while blocked on a full pipe. A snapshot the pool
# holds already is used and kept; one that predates the device is refused.
# DISKS: meta=8M data=64M
# TIMEOUT: 240
# TOOLS: thin_send thin_receive
# ENV: THIN_SECTORS=32768
# EXPECT: devices==5 held==0
set -o pipefail
export THINMETA_RECEIVE_STATE_DIR=/tmp/rstate   # what each target holds (thin_receive)
mkdir -p $THINMETA_RECEIVE_STATE_DIR
pool_create /dev/vda /dev/vdb 128
TS=/opt/bin/thin_send
TR=/opt/bin/thin_receive
no_hold() { [ "$(held_field)" = "-" ] || fail "a metadata snapshot is still held after: $*"; }
same() { cmp "$1" "$2" || fail "$3: $1 differs from $2"; say "equal: $3"; }
token_of() { sed -n 's/^.*resume token: *\([^ ]*\).*$/\1/p' "$1" | tail -1; }

create_thin 1
W 1 1 0-199
create_snap 2 1
W 1 2 50-99
D 1 150-159
create_snap 3 1
W 1 3 0-9 230-255
create_snap 4 1
$TS /dev/mapper/thin2 | $TR /tmp/b.img || fail "full stream of 2"
same /dev/mapper/thin2 /tmp/b.img "full stream of 2"
$TS /dev/mapper/thin2 /dev/mapper/thin3 > /tmp/s23 || fail "send 2->3"
$TS /dev/mapper/thin3 /dev/mapper/thin4 > /tmp/s34 || fail "send 3->4"
no_hold "sends to files"

# 1. wrong base: 3->4 onto a copy of 2
if $TR /tmp/b.img < /tmp/s34 2>$OUT/wrongbase.err; then fail "a stream was applied onto the wrong base"; fi
say "wrong base refused: $(head -1 $OUT/wrongbase.err)"
same /dev/mapper/thin2 /tmp/b.img "target unchanged after the wrong-base refusal"

# 2. one flipped byte in the middle of 2->3: stops with an error; resumed by token
cp /tmp/s23 /tmp/bad
off=$(( $(stat -c %s /tmp/bad) / 2 ))
byte=$(dd if=/tmp/bad bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %o $(( (byte + 1) % 256 )))" | dd of=/tmp/bad bs=1 seek=$off conv=notrunc 2>/dev/null
cmp -s /tmp/bad /tmp/s23 && fail "the byte was not flipped"
if $TR /tmp/b.img < /tmp/bad 2>$OUT/flip.err; then fail "a damaged stream was applied"; fi
say "flipped byte at $off: $(head -1 $OUT/flip.err)"
tok=$(token_of $OUT/flip.err)
[ -n "$tok" ] || fail "no resume token after the damaged stream: $(cat $OUT/flip.err)"
$TS --resume "$tok" /dev/mapper/thin2 /dev/mapper/thin3 | $TR /tmp/b.img || fail "resume after the damaged stream"
no_hold "resume send"
same /dev/mapper/thin3 /tmp/b.img "2->3 finished by --resume after a flipped byte"

# 3. 3->4 cut in half: stops, token, resumed
head -c $(( $(stat -c %s /tmp/s34) / 2 )) /tmp/s34 > /tmp/half
if $TR /tmp/b.img < /tmp/half 2>$OUT/cut.err; then fail "half a stream was accepted"; fi
say "cut stream: $(head -1 $OUT/cut.err)"
tok=$(token_of $OUT/cut.err)
[ -n "$tok" ] || fail "no resume token after the cut stream: $(cat $OUT/cut.err)"
$TS --resume "$tok" /dev/mapper/thin3 /dev/mapper/thin4 > /tmp/rest || fail "resume send 3->4"
$TR /tmp/b.img < /tmp/rest || fail "resume receive 3->4"
say "resumed with $(stat -c %s /tmp/rest) bytes of $(stat -c %s /tmp/s34)"
same /dev/mapper/thin4 /tmp/b.img "3->4 finished by --resume after a cut"

# 4. nothing left held: broken pipe, full output, signals while blocked on a full pipe
rc=0; $TS /dev/mapper/thin3 | head -c 100 > /dev/null || rc=$?
say "broken pipe: exit $rc"; no_hold "broken pipe"
if $TS /dev/mapper/thin3 > /dev/full 2>$OUT/full.err; then fail "thin_send to /dev/full succeeded"; fi
say "full stdout: $(head -1 $OUT/full.err)"; no_hold "full stdout"
if $TS -o /dev/full /dev/mapper/thin3 2>$OUT/fullo.err; then fail "thin_send -o /dev/full succeeded"; fi
say "full -o: $(head -1 $OUT/fullo.err)"; no_hold "full -o"
mkfifo /tmp/fifo
for sig in TERM HUP; do
  sleep 100 < /tmp/fifo &
  spid=$!
  $TS /dev/mapper/thin3 > /tmp/fifo 2>$OUT/sig.err &
  pid=$!
  i=0; while [ "$(held_field)" = "-" ] && [ $i -lt 300 ]; do i=$((i + 1)); done
  [ "$(held_field)" != "-" ] || fail "thin_send never held the snapshot"
  sleep 1
  kill -$sig $pid
  rc=0; wait $pid || rc=$?
  kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
  say "SIG$sig: exit $rc: $(cat $OUT/sig.err)"
  [ $rc -eq 1 ] || fail "exit status $rc after SIG$sig (want 1)"
  no_hold "SIG$sig"
done

# 5. the pool's own metadata snapshot: used and kept; one that predates the device: refused
reserve
h=$(held_field)
$TS /dev/mapper/thin3 > /tmp/s3h || fail "send with the pool's snapshot held"
[ "$(held_field)" = "$h" ] || fail "the pool's own snapshot was released"
create_snap 5 1
if $TS /dev/mapper/thin5 > /tmp/s5 2>$OUT/predates.err; then fail "a snapshot predating thin 5 was used"; fi
grep -q predates $OUT/predates.err || fail "predates: $(cat $OUT/predates.err)"
say "refused: $(cat $OUT/predates.err)"
release
no_hold "release"
E 1 3 0-9
teardown
