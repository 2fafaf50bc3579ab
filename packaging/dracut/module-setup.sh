#!/bin/bash
# dracut module: our thin_check (the multi-call binary and its thin_check link) and the
# dm-thin-pool module, for lvm2 thin pools activated from the initramfs.

check() {
    require_binaries thinmeta thin_check || return 1
    return 0
}

depends() {
    echo dm
    return 0
}

installkernel() {
    hostonly='' instmods dm-thin-pool
}

install() {
    inst_multiple thinmeta thin_check
}
