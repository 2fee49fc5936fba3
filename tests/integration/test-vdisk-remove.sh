#!/bin/bash
# vdisk remove: refused while a device streams the vDisk (its session
# open in nbdkit with the plugin, even after the device was moved to
# another vDisk) or while its editor has it, with a message that says
# so; nothing is lost by the refusal; once nobody has it open it goes
# entirely.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires /usr/bin/nbdsh --version

make_vdisk_farm ram
make_image "$TESTDIR/other.raw" 4M 0:1
df vdisk import other "$TESTDIR/other.raw" >/dev/null
start_nbdkit session-linger=0
vdir=$TESTDIR/farm/store/vdisks/base

# hold EXPORT NAME: a client that reads EXPORT and keeps it open until
# $TESTDIR/NAME.go appears (at most 60 s); $TESTDIR/NAME.ready says it is in.
hold () {
  /usr/bin/nbdsh -u "$(nbd_uri "$1")" -c '
import os, time
assert h.pread(4096, 0) is not None
open("'"$TESTDIR/$2.ready"'", "w").close()
deadline = time.monotonic() + 60
while not os.path.exists("'"$TESTDIR/$2.go"'") and time.monotonic() < deadline:
    time.sleep(0.05)
' &
  HOLD_PID=$!
  cleanup_fn "stop_pid $HOLD_PID"
  wait_for 30 "$2 connected" test -e "$TESTDIR/$2.ready"
}

# release NAME: the holder disconnects and exits.
release () {
  touch "$TESTDIR/$1.go"
  wait "$HOLD_PID" || fail "client $1 failed"
}

# The device boots (dev/pc1@s1 streams base), then the operator moves it
# to another vDisk: the running session keeps base until its next boot.
hold dev/pc1@s1 pc1
df device set pc1 --vdisk other
expect_fail 'vdisk "base" is in use: its layer 0001.layer is open' \
  df vdisk remove base
expect_fail 'a device streaming it' df vdisk remove base
# Nothing was lost, and the session still reads.
df vdisk verify base >/dev/null || fail "base damaged by a refused removal"
nbdsh_run dev/pc1@s1 -c 'h.pread(4096, 0)' || fail "session broken"
release pc1
# nbdkit closes the session a moment after the client has gone.
wait_for 30 "nbdkit to close base" df vdisk remove base
[ ! -e "$vdir" ] || fail "$vdir still there"
df vdisk list | grep -q '^base ' && fail "base still listed"
ls -A "$TESTDIR/farm/store/vdisks" | grep -q remove && fail "leftovers"

# Its editor holds the maintenance version.
df device remove pc1
df version new other >/dev/null
hold edit/other ed
expect_fail 'vdisk "other" is in use: its layer 0002.layer is open' \
  df vdisk remove other
release ed
wait_for 30 "nbdkit to close the editor" df vdisk remove other
[ "$(df vdisk list --json)" = "[]" ] || fail "vdisks left: $(df vdisk list)"
echo PASS
