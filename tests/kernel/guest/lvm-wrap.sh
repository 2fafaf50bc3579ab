#!/bin/sh
# lvm2 calls our tools through these wrappers (/opt/wrap/thin_*): each call and its exit status
# is appended to $OUT/tools.log. LVM2_FALSE_TOOL=thin_X runs /bin/false instead of that tool.
t=${0##*/}
log=${OUT:-/out}/tools.log
echo "call $t $*" >> "$log"
if [ "${LVM2_FALSE_TOOL:-}" = "$t" ]; then
  /bin/false
else
  /opt/bin/$t "$@"
fi
rc=$?
echo "exit $t $rc" >> "$log"
exit $rc
