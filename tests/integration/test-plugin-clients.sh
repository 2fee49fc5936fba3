#!/bin/bash
# Real NBD clients through a device session: nbdcopy, qemu-img convert
# and compare, qemu-io write and read patterns.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires qemu-io --version

make_vdisk_farm
start_nbdkit
dev=$(nbd_uri dev/pc1@s1)

# The session starts as the vDisk.
qemu-img compare -q "$TESTDIR/base.raw" "$dev" || fail "session differs from the vDisk"
nbdcopy --connections=4 "$dev" "$TESTDIR/copy.raw"
cmp "$TESTDIR/copy.raw" "$TESTDIR/base.raw" || fail "nbdcopy differs"

# qemu-io patterns, aligned and not, through the write cache.
qemu-io -f raw "$dev" \
  -c 'write -P 0xa5 0 64k' -c 'write -P 0x5a 1m 4k' -c 'write -P 0x11 3146240 1536' \
  -c 'write -z 8m 1m' -c 'flush' >/dev/null
out=$(qemu-io -f raw "$dev" \
  -c 'read -P 0xa5 0 64k' -c 'read -P 0x5a 1m 4k' -c 'read -P 0x11 3146240 1536' \
  -c 'read -P 0 8m 1m' -c 'read -P 0x5a 1052672 4k' 2>&1) || true
case $out in *"verification failed"*) ;; *) fail "a wrong pattern passed: $out" ;; esac
out=$(qemu-io -f raw "$dev" \
  -c 'read -P 0xa5 0 64k' -c 'read -P 0x5a 1m 4k' -c 'read -P 0x11 3146240 1536' \
  -c 'read -P 0 8m 1m' 2>&1)
case $out in *"failed"*|*rror*) fail "qemu-io patterns: $out" ;; esac
[ "$(grep -c '^read ' <<<"$out")" = 4 ] || fail "qemu-io patterns: $out"
# What was not written is still the vDisk.
qemu-img compare -q "$TESTDIR/base.raw" "$dev" && fail "writes did not land"
nbdcopy "$dev" "$TESTDIR/after.raw"
cmp -i 4194304:4194304 -n 4194304 "$TESTDIR/after.raw" "$TESTDIR/base.raw" ||
  fail "untouched range changed"

# qemu-img convert from the session into qcow2 and compare.
qemu-img convert -O qcow2 "$dev" "$TESTDIR/dev.qcow2"
qemu-img compare -q "$TESTDIR/dev.qcow2" "$TESTDIR/after.raw" || fail "qemu-img convert"

# The vDisk itself never changed.
nbdcopy "$(nbd_uri img/base)" "$TESTDIR/img.raw"
cmp "$TESTDIR/img.raw" "$TESTDIR/base.raw" || fail "a device write reached the vDisk"
df vdisk verify base >/dev/null || fail "vdisk verify after device writes"
echo PASS
