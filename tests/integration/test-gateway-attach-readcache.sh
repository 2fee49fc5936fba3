#!/bin/bash
# diskfarm-gateway attach --read-cache: blocks read once come from the
# host's cache afterwards — across a restart, and for another attach of
# the same version at the same time; a new version never reads the old
# one's blocks; the cache stays within its size; an attach killed in the
# middle leaves a cache the next one uses.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
need nbdkit --version
need /usr/bin/nbdsh --version

make_farm
make_image "$TESTDIR/v1.raw" 64M 0:64
df vdisk import base "$TESTDIR/v1.raw" >/dev/null
df device add pc1 --mac 52:54:00:00:00:01 --vdisk base --cache device
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache device
start_server srv1
RC=$TESTDIR/rcache
opts=(--servers "unix:$TESTDIR/srv1.sock" --read-cache "$RC"
      --read-cache-size 256M)

# read_all NAME: the whole disk through attach NAME's socket.
read_all () {
  nbdcopy "nbd+unix:///?socket=$TESTDIR/$1.sock" "$TESTDIR/$1.out"
}
stat_of () {   # stat_of NAME: "HITS MISSES" of its last detach
  sed -n 's/.*read cache .*: \([0-9]*\) hits, \([0-9]*\) misses.*/\1 \2/p' \
    "$TESTDIR/$1.attach.log" | tail -1
}

start_attach a dev/pc1@r1 "${opts[@]}" --nbd-socket "$TESTDIR/a.sock" \
  --overlay "$TESTDIR/pc1.layer"
read_all a
cmp -s "$TESTDIR/a.out" "$TESTDIR/v1.raw" || fail "first read"
# Another attach of the same version, now: it finds the blocks.
start_attach b dev/pc2@r1 "${opts[@]}" --nbd-socket "$TESTDIR/b.sock" \
  --overlay "$TESTDIR/pc2.layer"
read_all b
cmp -s "$TESTDIR/b.out" "$TESTDIR/v1.raw" || fail "second attach's read"
stop_attach b
stop_attach a
read -r hits misses <<<"$(stat_of a)"
[ "$misses" -gt 0 ] || fail "the first attach read nothing from the server"
read -r hits misses <<<"$(stat_of b)"
[ "$misses" = 0 ] && [ "$hits" -gt 0 ] ||
  fail "the second attach missed the cache ($hits hits, $misses misses)"

# After a restart, and with the server's log as witness: no reads.
start_attach c dev/pc1@r2 "${opts[@]}" --nbd-socket "$TESTDIR/c.sock" \
  --overlay "$TESTDIR/pc1-2.layer"
read_all c
cmp -s "$TESTDIR/c.out" "$TESTDIR/v1.raw" || fail "read after a restart"
stop_attach c
read -r hits misses <<<"$(stat_of c)"
[ "$misses" = 0 ] || fail "the cache did not survive a restart ($misses misses)"

# A new production version: its blocks are its own.
df version new base >/dev/null
make_image "$TESTDIR/v2part.raw" 4M 0:4
nbdsh_run edit/base -c "
with open('$TESTDIR/v2part.raw', 'rb') as f:
    h.pwrite(f.read(), 8 * 1024 * 1024)
h.flush()"
df version promote base 2 production >/dev/null
cp "$TESTDIR/v1.raw" "$TESTDIR/v2.raw"
dd if="$TESTDIR/v2part.raw" of="$TESTDIR/v2.raw" bs=1M seek=8 conv=notrunc \
  status=none
start_attach d dev/pc1@r3 "${opts[@]}" --nbd-socket "$TESTDIR/d.sock" \
  --overlay "$TESTDIR/pc1-3.layer"
read_all d
cmp -s "$TESTDIR/d.out" "$TESTDIR/v2.raw" ||
  fail "the new version read stale blocks"
stop_attach d
read -r hits misses <<<"$(stat_of d)"
[ "$hits" = 0 ] || fail "the new version found $hits blocks of the old one"

# A small cache stays small; the least recently used blocks go.
rm -rf "$RC"
start_attach e dev/pc1@r4 --servers "unix:$TESTDIR/srv1.sock" \
  --read-cache "$RC" --read-cache-size 16M --nbd-socket "$TESTDIR/e.sock" \
  --overlay "$TESTDIR/pc1-4.layer"
read_all e
cmp -s "$TESTDIR/e.out" "$TESTDIR/v2.raw" || fail "read through a small cache"
used=$(du -k "$RC/data" | cut -f1)
[ "$used" -le $((16 * 1024 + 64)) ] || fail "the cache holds $used KiB, over 16M"
# Killed in the middle: the next attach uses what is there.
kill -9 "${ATTACH_PID[e]}"
wait "${ATTACH_PID[e]}" 2>/dev/null || true
start_attach f dev/pc1@r5 --servers "unix:$TESTDIR/srv1.sock" \
  --read-cache "$RC" --read-cache-size 16M --nbd-socket "$TESTDIR/f.sock" \
  --overlay "$TESTDIR/pc1-5.layer"
# The last 8 MiB read are the most recently used: still there.
/usr/bin/nbdsh -u "nbd+unix:///?socket=$TESTDIR/f.sock" -c "
with open('$TESTDIR/v2.raw', 'rb') as f:
    f.seek(56 << 20)
    assert h.pread(8 << 20, 56 << 20) == f.read(8 << 20)" ||
  fail "read after a killed attach"
stop_attach f
read -r hits misses <<<"$(stat_of f)"
[ "$hits" -gt 0 ] || fail "nothing of the killed attach's cache was used"
echo PASS
