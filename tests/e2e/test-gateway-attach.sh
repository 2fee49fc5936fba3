#!/bin/bash
# A qemu guest whose disk is diskfarm-gateway attach's NBD socket (a
# hypervisor's view): it boots the e2e guest with its root disk on
# virtio-blk from the socket, and while it writes 16 MiB the serving
# nbdkit is SIGKILLed.  The attach moves the device to the second server
# (the session's disk cache is on storage both share) and the guest
# carries on: it ends with its OK line, having read back every byte.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
[ "$(id -u)" -eq 0 ] || fail "needs root"
for c in nbdkit nbdcopy qemu-system-x86_64 debugfs; do
  command -v $c >/dev/null || fail "needs $c"
done

e2e_setup

session=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker=marker-$session
make_farm
e2e_make_disk "$TESTDIR/disk.img" 64M "$marker"
df vdisk import base "$TESTDIR/disk.img" >/dev/null
df device add pc1 --mac 52:54:00:00:00:01 --vdisk base --cache disk
add_servers srv2
start_server srv1
start_server srv2
SOCK=$TESTDIR/pc1.sock
start_attach a "dev/pc1@$session" --shared-cache \
  --servers "unix:$TESTDIR/srv1.sock,unix:$TESTDIR/srv2.sock" \
  --nbd-socket "$SOCK"

e2e_boot_kernel pc1 "e2e.disk=/dev/vda e2e.pause=3 e2e.token=$session" \
  -drive "file=nbd+unix:///?socket=$SOCK,format=raw,if=virtio,cache=none"
e2e_wait_line pc1 '^DISKFARM-E2E: PAUSE' >/dev/null
kill_server srv1
e2e_wait_result pc1
[ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$session" ] ||
  fail "unexpected result: $E2E_RESULT"
pause=$(attach_log a | grep -o 'now served by .*srv2.sock, after a pause of .*') ||
  { attach_log a >&2; fail "the attach did not move to srv2"; }
echo "e2e: $pause"
stop_attach a

# The session, as the second server has it, holds what the guest wrote
# after the failover.
nbdcopy "nbd+unix:///dev/pc1@$session?socket=$TESTDIR/srv2.sock" \
  "$TESTDIR/after.img"
[ "$(e2e_disk_cat "$TESTDIR/after.img" /e2e-wrote2)" = "$session" ] ||
  fail "the write after the failover is not in the session"
echo PASS
