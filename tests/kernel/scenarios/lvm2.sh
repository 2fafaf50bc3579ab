# Debian's lvm2 (cache/lvm2.cpio: unpacked, never installed on the host; no udev, no daemons,
# monitoring off) managing thin pools on /dev/vda with our tools behind logging wrappers
# (global/thin_*_executable = /opt/wrap/thin_*, log in tools.log). Two guest boots (klvm2.py):
#   PHASE=create  VG vg, pool1 (thin1 + thin snapshot snap1, lvcreate -s -kn) and pool2 (big2,
#                 small2), known content written; deactivate/activate (our thin_check runs);
#                 activation with thin_check_options + --skip-mappings; all deactivated.
#   host          sets needs_check in pool1's superblock (checksum fixed), zeroes a mapping
#                 leaf of big2 in pool2's metadata.
#   PHASE=repair  pool1 activates: our check clears needs_check (pool rw); pool2 refused at
#                 activation; lvconvert --repair (our thin_repair, then thin_dump); pool2 active
#                 again, every LV read back; lvextend --poolmetadatasize and data lvextend,
#                 deactivate, activate, read back.
# Every lvm2 command and its exit status is in lvm2.log. LVM2_FALSE_TOOL=thin_X (host env)
# swaps that tool for /bin/false (the scenario must then fail).
# DISKS: pv=320M
# TIMEOUT: 600
# TOOLS: thin_check thin_dump thin_repair thin_restore
# PRE: lvm2
# CHECK: lvm2
export LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p /run/lock/lvm /run/lvm
LOG=$OUT/lvm2.log
BSB=65536   # pool chunk size 64 KiB: block = 128 sectors
[ -x /sbin/lvm ] || fail "no lvm2 in the guest (cache/lvm2.cpio)"
# L WANT CMD...: run an lvm2 command, log it and its exit status; WANT is 0 or fail
L() {
  want=$1; shift
  echo "\$ $*" >> $LOG
  rc=0
  "$@" >> $LOG 2>&1 || rc=$?
  echo "exit $rc" >> $LOG
  say "lvm2: $* -> exit $rc"
  if [ "$want" = 0 ] && [ $rc -ne 0 ]; then fail "$* exited $rc (lvm2.log: $(tail -3 $LOG | tr '\n' ' '))"; fi
  if [ "$want" = fail ] && [ $rc -eq 0 ]; then fail "$* succeeded; it must fail"; fi
  return 0
}
mark() { echo "== $*" >> $LOG; echo "mark $*" >> $OUT/tools.log; say "step: $*"; }
LW() {
  lv=$1; tag=$2; shift 2
  $BW write /dev/mapper/vg-$lv $BSB 4096 $tag "$@" 2>>$LOG || fail "$lv: writing tag $tag to $* failed ($(tail -2 $LOG | tr '\n' ' '))"
  echo "write $lv $tag $*" >> $OUT/content
}
LE() { lv=$1; tag=$2; shift 2; $BW expect /dev/mapper/vg-$lv $BSB 4096 $tag "$@" 2>>$LOG || fail "$lv: tag $tag $* read back wrong"; }
LV() { $BW verify /dev/mapper/vg-$1 $BSB 4096 "$2" > $OUT/verify-$1-$3; }
status() { $DM status vg-$1-tpool | tee -a $LOG; }
pool1_reads() {
  LE thin1 1 0-49 100-199
  LE thin1 2 50-99
  LE snap1 1 0-149 160-199
  LE snap1 3 150-159
}
echo "lvm2 $(cat /etc/lvm/lvm2-version) $(lvm version | head -1)" >> $LOG
: >> $OUT/tools.log

case ${PHASE:-} in
create)
  mark create
  L 0 pvcreate /dev/vda
  L 0 vgcreate vg /dev/vda
  L 0 lvcreate --type thin-pool -L 64M --poolmetadatasize 4M -c 64k -Zn -n pool1 vg
  L 0 lvcreate -V 64M -T vg/pool1 -n thin1
  L 0 lvcreate --type thin-pool -L 64M --poolmetadatasize 4M -c 64k -Zn -n pool2 vg
  L 0 lvcreate -V 128M -T vg/pool2 -n big2
  L 0 lvcreate -V 64M -T vg/pool2 -n small2
  LW thin1 1 0-199
  L 0 lvcreate -s -kn -n snap1 vg/thin1
  LW thin1 2 50-99
  LW snap1 3 150-159
  LW big2 21 0-699
  LW small2 22 0-99
  pool1_reads
  mark deactivate-activate
  L 0 vgchange -an vg
  L 0 vgchange -ay vg
  pool1_reads
  LE big2 21 0-699
  LE small2 22 0-99
  mark skip-mappings
  L 0 vgchange -an vg
  L 0 vgchange -ay --config 'global/thin_check_options=["-q","--clear-needs-check-flag","--skip-mappings"]' vg
  pool1_reads
  L 0 vgchange -an vg
  mark layout
  lvs -a --noheadings --separator ' ' -o lv_name,seg_pe_ranges vg > $OUT/segments
  pvs --noheadings --units s --nosuffix -o pe_start /dev/vda > $OUT/pe_start
  vgs --noheadings --units s --nosuffix -o vg_extent_size vg > $OUT/extent_size
  cat $OUT/segments >> $LOG
  ;;
repair)
  mark needs-check
  L 0 lvchange -ay vg/thin1 vg/snap1
  s=$(status pool1)
  case "$s" in *needs_check*) fail "pool1 still needs_check: $s";; esac
  case "$s" in *" rw "*) ;; *) fail "pool1 not read-write: $s";; esac
  pool1_reads
  LW thin1 4 200-209
  LE thin1 4 200-209
  mark damaged
  L fail lvchange -ay vg/big2
  L 0 vgchange -an vg
  mark repair
  L 0 lvconvert --repair vg/pool2
  L 0 lvchange -ay vg/big2 vg/small2
  LV big2 0-699 repaired
  LE small2 22 0-99
  mark extend
  L 0 lvextend --poolmetadatasize +4M vg/pool2
  L 0 lvextend -L +32M vg/pool2
  LW big2 23 700-1199   # pool2 then holds 1052 blocks: more than the 1024 before lvextend
  L 0 vgchange -an vg
  L 0 vgchange -ay vg
  pool1_reads
  LE thin1 4 200-209
  LV big2 0-699 final
  LE big2 23 700-1199
  LE small2 22 0-99
  status pool2 > /dev/null
  L 0 vgchange -an vg
  lvs -a --noheadings --separator ' ' -o lv_name,seg_pe_ranges vg > $OUT/segments
  pvs --noheadings --units s --nosuffix -o pe_start /dev/vda > $OUT/pe_start
  vgs --noheadings --units s --nosuffix -o vg_extent_size vg > $OUT/extent_size
  cat $OUT/segments >> $LOG
  ;;
*) fail "PHASE must be create or repair";;
esac
say "lvm2 phase ${PHASE} done"
