#!/bin/bash
# Failover in a real guest: the server the guest's root disk came from
# dies; the guest's I/O waits while no server answers; when the second
# server of the list comes up, diskfarm-attach's watcher hands the
# kernel a connection to it (NBD_CMD_RECONFIGURE) and the held I/O goes
# through.  At the end the watcher exits with the device's disconnect.
# Both servers serve the same image file, as servers sharing a store do.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"

e2e_requires nbdkit
e2e_setup
e2e_start_dnsmasq

session=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
name=dev/pc1@$session
marker=marker-$session
disk=$TESTDIR/disk.img
e2e_make_disk "$disk" 64M "$marker"
serve () {
  e2e_start_server "$1" "$2" --filter=exportname file "$disk" \
    exportname-strict=true exportname="$name"
}
serve s1 10809

e2e_boot_kernel pc1 "diskfarm.servers=$E2E_HOST_IP:10809,\
$E2E_HOST_IP:10810 diskfarm.export=$name diskfarm.dead_timeout=60 \
diskfarm.io_timeout=5 e2e.pause=2 e2e.token=$session"
e2e_wait_line pc1 '^DISKFARM-E2E: PAUSE' >/dev/null
e2e_stop_server s1
# The guest's reads and writes after its pause wait for a server.
sleep 6
grep -q '^DISKFARM-E2E: \(OK\|FAIL\)' "$TESTDIR/pc1.console" &&
  fail "the guest finished its I/O while no server was up"
serve s2 10810
e2e_wait_result pc1

[ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$session" ] ||
  fail "unexpected result: $E2E_RESULT"
[ "$(e2e_disk_cat "$disk" /e2e-wrote2)" = "$session" ] ||
  fail "the write after the failover did not reach the image"
console=$(tr -d '\r' <"$TESTDIR/pc1.console")
case $console in
*"lost a connection to $E2E_HOST_IP:10809; failing over"*) ;;
*) fail "the watcher did not report the lost connection" ;;
esac
case $console in
*"$E2E_HOST_IP:10810: connect: Connection refused"*) ;;
*) fail "the watcher did not report the second server down" ;;
esac
case $console in
*"/dev/nbd0: now served by $E2E_HOST_IP:10810"*) ;;
*) fail "the watcher did not move the disk to the second server" ;;
esac
case $console in
*"/dev/nbd0 was disconnected; exiting"*) ;;
*) fail "the watcher did not exit after the disconnect" ;;
esac
echo PASS
