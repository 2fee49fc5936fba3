#!/bin/bash
# diskfarm-gateway attach: fio with crc32c verification through both
# front ends (the NBD socket and the FUSE file) at once, for a device
# with a server-side write cache and for one that keeps its writes in a
# local overlay; the overlay survives a restart; options that do not fit
# the device are refused, and so is a socket or file another attach
# serves; what a flush acknowledged survives a SIGKILL of
# the attach; clients (qemu-img, nbdcopy, nbdinfo) work; a
# version (img/) attaches read-only.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
need nbdkit --version
need fio --enghelp=nbd
[ -c /dev/fuse ] || fail "no /dev/fuse"

make_vdisk_farm disk 256M
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache device
start_server srv1
SOCK=$TESTDIR/a.sock
IMG=$TESTDIR/a.img

both_front_ends () {   # both_front_ends TAG: fio on each, at the same time
  run_fio "$1-nbd" --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" \
    --size=64M &
  local nbd=$!
  run_fio "$1-file" --ioengine=libaio --filename="$IMG" --offset=128M \
    --size=64M
  wait $nbd || fail "fio through the NBD socket failed"
}

# A server-side write cache: both front ends, one stack.
start_attach a dev/pc1@fio --servers "unix:$TESTDIR/srv1.sock" \
  --nbd-socket "$SOCK" --file "$IMG" -c 2
attach_log a | grep -q "FAILOVER IS NOT SAFE" ||
  fail "no warning that a disk cache on one server cannot fail over"
# Another attach may not take the socket or the file over: the first
# keeps serving both (checked below).
expect_fail "is in use" timeout 30 "$GATEWAY" attach img/base --read-only \
  --servers "unix:$TESTDIR/srv1.sock" --nbd-socket "$SOCK"
expect_fail "is in use" timeout 30 "$GATEWAY" attach img/base --read-only \
  --servers "unix:$TESTDIR/srv1.sock" --file "$IMG"
nbdinfo "nbd+unix:///?socket=$SOCK" | grep -q 'export-size: 268435456' ||
  fail "the NBD socket does not offer the disk"
[ "$(stat -c %s "$IMG")" = 268435456 ] || fail "the FUSE file has the wrong size"
both_front_ends disk
# What one front end wrote, the other reads; the server has it.
dd if=/dev/urandom of="$TESTDIR/pattern" bs=1M count=3 status=none
dd if="$TESTDIR/pattern" of="$IMG" bs=1M seek=200 conv=notrunc,fsync status=none
nbdcopy "nbd+unix:///?socket=$SOCK" "$TESTDIR/copy.raw"
cmp -s <(dd if="$TESTDIR/copy.raw" bs=1M skip=200 count=3 status=none) \
  "$TESTDIR/pattern" || fail "the NBD socket does not see the FUSE file's write"
stop_attach a
nbdcopy "$(nbd_uri dev/pc1@fio)" "$TESTDIR/server.raw" ||
  fail "reading the session from the server"
cmp -s "$TESTDIR/copy.raw" "$TESTDIR/server.raw" ||
  fail "the server's session differs from what the attach showed"

# Write cache "device": the writes stay in the overlay, across a restart.
expect_fail "give --overlay" "$GATEWAY" attach dev/pc2@dev \
  --servers "unix:$TESTDIR/srv1.sock" --nbd-socket "$SOCK"
expect_fail "--read-cache needs a device whose writes stay" "$GATEWAY" attach \
  dev/pc1@x --servers "unix:$TESTDIR/srv1.sock" --nbd-socket "$SOCK" \
  --read-cache "$TESTDIR/rc"
start_attach b dev/pc2@dev --servers "unix:$TESTDIR/srv1.sock" \
  --nbd-socket "$SOCK" --file "$IMG" --overlay "$TESTDIR/pc2.layer"
attach_log b | grep -q "failover: to any listed server" ||
  fail "a device-mode disk does not say it can fail over"
both_front_ends device
nbdcopy "nbd+unix:///?socket=$SOCK" "$TESTDIR/dev1.raw"
stop_attach b
start_attach b dev/pc2@dev --servers "unix:$TESTDIR/srv1.sock" \
  --nbd-socket "$SOCK" --overlay "$TESTDIR/pc2.layer"
nbdcopy "nbd+unix:///?socket=$SOCK" "$TESTDIR/dev2.raw"
cmp -s "$TESTDIR/dev1.raw" "$TESTDIR/dev2.raw" ||
  fail "the overlay lost writes across a restart"
# qemu reads it as a raw disk through the socket.
qemu-img compare -f raw -F raw "$TESTDIR/dev1.raw" \
  "nbd+unix:///?socket=$SOCK" >/dev/null || fail "qemu-img compare"
# Crash-safe: what a FLUSH acknowledged survives a SIGKILL of the
# attach (and the dead FUSE file it leaves is cleaned at the next start).
dd if=/dev/urandom of="$TESTDIR/flushed" bs=1M count=2 status=none
/usr/bin/nbdsh -u "nbd+unix:///?socket=$SOCK" -c "
h.pwrite(open('$TESTDIR/flushed', 'rb').read(), 100 << 20)
h.flush()" || fail "writing before the crash"
kill -9 "${ATTACH_PID[b]}"
wait "${ATTACH_PID[b]}" 2>/dev/null || true
start_attach b dev/pc2@dev --servers "unix:$TESTDIR/srv1.sock" \
  --nbd-socket "$SOCK" --file "$IMG" --overlay "$TESTDIR/pc2.layer"
cmp -s <(dd if="$IMG" bs=1M skip=100 count=2 iflag=direct status=none) \
  "$TESTDIR/flushed" || fail "a flushed write was lost when the attach was killed"
stop_attach b
# The server never saw those writes: the device is read-only there.
nbdcopy "$(nbd_uri dev/pc2@other)" "$TESTDIR/server2.raw"
cmp -s "$TESTDIR/base.raw" "$TESTDIR/server2.raw" ||
  fail "a device-mode device's writes reached the server"

# A version, read-only: img/VDISK.
start_attach c img/base --servers "unix:$TESTDIR/srv1.sock" --read-only \
  --nbd-socket "$SOCK" --file "$IMG"
nbdinfo "nbd+unix:///?socket=$SOCK" | grep -q 'is_read_only: true' ||
  fail "img/ is not read-only through the attach"
cmp -s "$IMG" "$TESTDIR/base.raw" || fail "img/base through the FUSE file"
if dd if=/dev/zero of="$IMG" bs=4k count=1 conv=notrunc status=none 2>/dev/null; then
  fail "wrote to a read-only FUSE file"
fi
stop_attach c
echo PASS
