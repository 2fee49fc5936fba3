#!/bin/sh
# dracut cmdline hook: diskfarm.export= on the kernel command line asks
# for the root disk from a diskfarm.  Setting netroot brings the network
# up (DHCP unless ip= says otherwise) and makes dracut call
# /sbin/diskfarmroot once an interface is online.  root= names the file
# system on the disk (/dev/nbd0p1, UUID=...) and is handled as for any
# block device (rootfs-block, or systemd's generators).

[ -n "$(getarg diskfarm.export=)" ] || return 0

if [ -n "$netroot" ] && [ "$netroot" != diskfarm ]; then
    warn "diskfarm.export= is given: ignoring netroot=$netroot"
fi
netroot=diskfarm
modprobe -q nbd || die "diskfarm: the kernel has no nbd module"

[ -z "$root" ] && root=$(getarg root=)
[ -n "$root" ] || die "diskfarm: root= is missing (e.g. root=/dev/nbd0p1)"

# /dev/nbd0 exists as soon as the module is loaded: the initqueue must
# wait for the device to be connected (a pid), not just to be there.
nbd=$(getarg diskfarm.nbd=)
nbd=${nbd:-nbd0}
nbd=${nbd##*/}
case $nbd in
    nbd*) ;;
    *) nbd=nbd$nbd ;;
esac
echo "[ -e /sys/block/$nbd/pid ]" >"$hookdir/initqueue/finished/diskfarm.sh"
