#!/bin/bash
# dracut module: a root disk from a diskfarm, attached by diskfarm-attach
# over the kernel NBD client once the network is up.

# called by dracut
check() {
    require_binaries @SBINDIR@/diskfarm-attach || return 1
    # A golden image carries it whatever disk the building host has.
    return 0
}

# called by dracut
depends() {
    echo network rootfs-block
}

# called by dracut
installkernel() {
    instmods nbd overlay
}

# called by dracut
install() {
    # Static: no libraries to resolve.
    inst_simple @SBINDIR@/diskfarm-attach /sbin/diskfarm-attach
    inst_hook cmdline 90 "$moddir/parse-diskfarm.sh"
    inst_script "$moddir/diskfarmroot.sh" /sbin/diskfarmroot
    inst_hook pre-pivot 10 "$moddir/diskfarm-overlay.sh"
    dracut_need_initqueue
}
