#!/bin/sh
# dracut pre-pivot hook: with diskfarm.cache=device the server serves
# the disk read-only and this host keeps its own write cache: an overlay
# with its upper layer in RAM goes over the root file system (mount it
# ro: the device is read-only), and writes vanish at reboot.

[ "$(getarg diskfarm.cache=)" = device ] || return 0

# Under /run, which goes on into the real root (/run/diskfarm/cache).
mkdir -p /run/diskfarm/cache
mount -t tmpfs -o mode=0755 diskfarm-cache /run/diskfarm/cache ||
    die "diskfarm: cannot mount the write cache's tmpfs"
mkdir -p /run/diskfarm/cache/upper /run/diskfarm/cache/work
modprobe -q overlay
# The overlay goes over the root mount itself: its lower layer is the
# file system mounted there now.
mount -t overlay \
    -o "lowerdir=$NEWROOT,upperdir=/run/diskfarm/cache/upper,workdir=/run/diskfarm/cache/work" \
    diskfarm-root "$NEWROOT" ||
    die "diskfarm: cannot put the write cache over the root file system"
