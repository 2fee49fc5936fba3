#!/bin/bash
# A server stop does not wait for the disk.  nbdkit took minutes to exit
# after sessions had written at random into their disk caches: closing a
# session (at disconnect, or at the stop) fdatasync'd its cache file, so
# the stop waited for the writeback of everything the sessions had
# written since their last FLUSH.  A client's FLUSH is what makes writes
# durable; closing and stopping only hand the cache file its RAM part and
# a park record of the map (common/layer/layer-park.c).  Here: no fdatasync of a cache file from the disconnect to the
# exit (seen by strace), a bounded exit, and a restarted server resumes
# the ram+disk session with every block it was given, the ram one gone.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires strace -V
NBDSH=/usr/bin/nbdsh
requires $NBDSH --version

make_farm
truncate -s 256M "$TESTDIR/base.raw"
df vdisk import base "$TESTDIR/base.raw" >/dev/null
df device add pr --mac 52:54:00:00:00:01 --vdisk base --cache ram+disk
df device add pm --mac 52:54:00:00:00:02 --vdisk base --cache ram
# 4 MiB of RAM per ram+disk session: most of what is written spills in
# the background, the rest is in RAM at the stop.
start_nbdkit ram-limit=4M

# Syscalls that wait for the disk, from now until nbdkit exits.  Not
# under a sanitizer, whose leak check at exit traces the threads itself.
TRACE=
[ -n "$(sanitizer_preload "$PLUGIN")" ] || TRACE=1
attached () {
  [ "$(awk '/^TracerPid/ { print $2 }' "/proc/$NBD_PID/status")" = "$STRACE_PID" ]
}
if [ -n "$TRACE" ]; then
  spawn STRACE_PID strace -f -y -qq -e trace=fsync,fdatasync,sync_file_range,syncfs,sync \
    -o "$TESTDIR/strace.out" -p "$NBD_PID"
  wait_for 30 "strace to attach" attached
fi

# 3000 4 KiB blocks at random places of 256 MiB, each holding its own
# number, written without FLUSH; then the client goes away.
cat > "$TESTDIR/blocks.py" <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]))
blocks = sorted(set(rng.randrange(65536) for _ in range(3000)))
def data(b):
    return (b"%08d" % b) * 512
PY
write_blocks () {   # write_blocks EXPORT SEED
  $NBDSH -u "$(nbd_uri "$1")" -c "
import sys; sys.argv = ['', '$2']
exec(open('$TESTDIR/blocks.py').read())
for b in blocks:
    h.pwrite(data(b), b * 4096)
"
}
write_blocks dev/pr@s1 7
write_blocks dev/pm@s1 8

if [ -n "$TRACE" ]; then
  t0=$(date +%s%N)
  kill -TERM "$NBD_PID"
  wait_gone "$NBD_PID" 30 || fail "nbdkit still runs 30 s after SIGTERM"
  echo "stop: $(( ($(date +%s%N) - t0) / 1000000 )) ms from SIGTERM to exit"
  wait_gone "$STRACE_PID" 10 || fail "strace did not end with nbdkit"
  if grep '\.layer>' "$TESTDIR/strace.out" >&2; then
    fail "closing or stopping waited for the disk (above)"
  fi
else
  stop_nbdkit
fi

# The restarted server resumes s1 of pr from its cache file alone.
start_nbdkit ram-limit=4M
$NBDSH -u "$(nbd_uri dev/pr@s1)" -c "
import sys; sys.argv = ['', '7']
exec(open('$TESTDIR/blocks.py').read())
bad = [b for b in blocks if h.pread(4096, b * 4096) != data(b)]
assert not bad, 'blocks lost or wrong after the restart: %d, first %d' % (len(bad), bad[0])
free = next(b for b in range(65536) if b not in set(blocks))
assert h.pread(4096, free * 4096) == bytes(4096), 'a block never written is not zero'
"
# A ram session does not outlive its server.
$NBDSH -u "$(nbd_uri dev/pm@s1)" -c "
import sys; sys.argv = ['', '8']
exec(open('$TESTDIR/blocks.py').read())
assert h.pread(4096, blocks[0] * 4096) == bytes(4096), 'a ram session came back'
"
stop_nbdkit
echo PASS
