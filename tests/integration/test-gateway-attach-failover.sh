#!/bin/bash
# diskfarm-gateway attach, failover when the serving nbdkit is SIGKILLed
# in the middle of fio (through the NBD socket and the FUSE file at
# once): the device's disk cache is on storage both servers share, the
# attach moves to the second server, the requests in flight go there:
# zero I/O errors, every block verifies, the pause is printed.  A device
# whose cache is in the server's RAM is not moved: its I/O waits for
# its own server (here: fails after --dead-timeout).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
need nbdkit --version
need fio --enghelp=nbd
[ -c /dev/fuse ] || fail "no /dev/fuse"

make_vdisk_farm disk 256M
add_servers srv2
start_server srv1
start_server srv2
SOCK=$TESTDIR/a.sock
IMG=$TESTDIR/a.img
SERVERS=unix:$TESTDIR/srv1.sock,unix:$TESTDIR/srv2.sock
CACHE=$TESTDIR/farm/store/caches/pc1/sessions/ko.layer

start_attach a dev/pc1@ko --servers "$SERVERS" --shared-cache \
  --nbd-socket "$SOCK" --file "$IMG"
attach_log a | grep -q "failover: to any listed server" ||
  fail "a shared disk cache does not allow failover"

run_fio ko-nbd --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" --size=96M &
fio_nbd=$!
run_fio ko-file --ioengine=libaio --filename="$IMG" --offset=128M \
  --size=96M &
fio_file=$!
# Kill the server once the writes are well under way.
cache_mb () { echo $(( $(du -k "$CACHE" 2>/dev/null | cut -f1) / 1024 )); }
cache_at_least () { [ "$(cache_mb)" -ge "$1" ]; }
wait_for 120 "32 MiB written before the kill" cache_at_least 32
kill_server srv1
wait $fio_nbd || fail "fio through the NBD socket"
wait $fio_file || fail "fio through the FUSE file"
pause=$(attach_log a | grep -o 'now served by unix:.*srv2.sock, after a pause of .*') ||
  { attach_log a >&2; fail "the attach did not move to srv2"; }
echo "SIGKILL: $pause"
attach_log a | grep -q "lost unix:.*srv1.sock" || fail "the loss was not logged"
stop_attach a

start_server srv1
# A RAM cache dies with its server: no failover, the device waits for
# its own server (and gives up after --dead-timeout).
df device set pc1 --cache ram+disk
# (A generous connect timeout: the restarted srv1 may be slow to answer
# on a loaded machine, and the attach would then try srv2, which finds
# the device's session still held by srv1.)
start_attach b dev/pc1@ram --servers "$SERVERS" --nbd-socket "$SOCK" \
  --dead-timeout 3 --connect-timeout 30
attach_log b | grep -q "FAILOVER IS NOT SAFE.*RAM" ||
  fail "no warning for a RAM cache"
nbdsh_probe () {
  /usr/bin/nbdsh -u "nbd+unix:///?socket=$SOCK" -c 'h.pread(4096, 0)'
}
nbdsh_probe || fail "reading before the kill"
kill_server srv1
if nbdsh_probe 2>"$TESTDIR/probe.err"; then
  fail "a RAM-cached device moved to another server"
fi
attach_log b | grep -q "now served by" && fail "a RAM-cached device failed over"
# Its last flush cannot reach a server either: it exits, and says so.
kill -TERM "${ATTACH_PID[b]}"
if wait "${ATTACH_PID[b]}"; then
  fail "the attach of a lost RAM-cached device exited 0"
fi
no_sanitizer_reports b
echo PASS
