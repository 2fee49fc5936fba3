#!/bin/sh
# dracut netroot handler for netroot=diskfarm: attaches the disk when an
# interface comes online.  $1: interface, $2: netroot, $3: NEWROOT.
# diskfarm-attach reads its settings from the kernel command line,
# retries the servers for diskfarm.timeout seconds and stays in the
# background to move the disk to another server if one fails.

command -v getarg >/dev/null || . /lib/dracut-lib.sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin

[ "$2" = diskfarm ] || exit 0

device=$(getarg diskfarm.nbd=)
device=${device:-/dev/nbd0}
name=${device##*/}
case $name in
    nbd*) ;;
    *) name=nbd$name ;;
esac
# Called for every interface that comes online: attach once.
[ -e "/sys/block/$name/pid" ] && exit 0

info "diskfarm: attaching /dev/$name to export $(getarg diskfarm.export=) via $1"
if ! /sbin/diskfarm-attach; then
    warn "diskfarm: diskfarm-attach could not attach /dev/$name"
    exit 1
fi
# udev marks an NBD device ready (for systemd) once it has a pid; make
# sure it looks again now that it has.
echo change >"/sys/block/$name/uevent"
udevadm settle
# Detach at shutdown, after the root file system.
need_shutdown
exit 0
