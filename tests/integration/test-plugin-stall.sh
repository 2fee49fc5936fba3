#!/bin/bash
# One slow device must not stall the others.  Device "slowpc" boots a
# vDisk whose store is on a deliberately slow FUSE file system (slowfs):
# its open is held until the test lets it go.  Meanwhile 50 other
# devices connect, read, write and disconnect (tests/storm): all of them
# must finish while the slow open is still held, no connect may take
# longer than the slow open, and their time is printed beside the same
# storm without the slow device.
#   STALL_DEVICES=N   fast devices (default 50)
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires /usr/bin/nbdsh --version
requires fusermount3 --version
[ -c /dev/fuse ] || skip "no /dev/fuse"

SLOWFS="$DISKFARM_BUILD/tests/slowfs"
STORM="$DISKFARM_BUILD/tests/storm"
n=${STALL_DEVICES:-50}
bound=60                        # seconds: a storm this long is a stall

make_vdisk_farm disk 64M
for i in $(seq 0 $((n - 1))); do
  printf '[device]\nmac = 52:54:01:00:%02x:%02x\nvdisk = base\ncache = disk\n' \
    $((i / 256)) $((i % 256)) > "$TESTDIR/farm/devices.d/f$i.conf"
done
# The slow vDisk's store: imported in place, then served through slowfs.
mkdir -p "$TESTDIR/slow-src" "$TESTDIR/slow"
df store add zslow --path "$TESTDIR/slow-src"
df vdisk import slow "$TESTDIR/base.raw" --store zslow >/dev/null
df device add slowpc --mac 52:54:00:00:00:99 --vdisk slow --cache disk
df store set zslow --path "$TESTDIR/slow"

hold="$TESTDIR/hold"
"$SLOWFS" --delay 100 --hold "$hold" --log "$TESTDIR/slowfs.log" \
  "$TESTDIR/slow-src" "$TESTDIR/slow" 2>"$TESTDIR/slowfs.err" &
slowfs_pid=$!
cleanup_fn "fusermount3 -u -z '$TESTDIR/slow' 2>/dev/null; stop_pid $slowfs_pid"
for _ in $(seq 100); do
  mountpoint -q "$TESTDIR/slow" && break
  kill -0 $slowfs_pid 2>/dev/null || { cat "$TESTDIR/slowfs.err" >&2; fail "slowfs died"; }
  sleep 0.1
done
mountpoint -q "$TESTDIR/slow" || fail "slowfs did not mount"

start_nbdkit session-linger=0
cleanup_fn "rm -f '$hold'"      # runs first: a held open must not block the end

storm () {   # storm SESSION -> "total_s slowest_connect_s"
  local out
  out=$(timeout $bound "$STORM" "nbd+unix:///dev/f%d@$1?socket=$NBD_SOCK" "$n" 4 1) ||
    { echo "$out" >&2; return 1; }
  echo "$out" | sed -n 's/.*total_s=\([0-9.]*\).*slowest_connect_s=\([0-9.]*\).*/\1 \2/p'
}

read -r alone alone_connect < <(storm alone) || fail "storm alone failed"

# The slow device's open starts and is held inside slowfs.
touch "$hold"
(
  start=$(date +%s.%N)
  /usr/bin/nbdsh -u "$(nbd_uri dev/slowpc@s1)" -c 'h.pread(4096, 0)'
  echo "$start $(date +%s.%N)" > "$TESTDIR/slow.times"
) &
slow_pid=$!
for _ in $(seq 300); do
  grep -q '^held' "$TESTDIR/slowfs.log" 2>/dev/null && break
  sleep 0.1
done
grep -q '^held' "$TESTDIR/slowfs.log" || fail "the slow device's open never reached slowfs"

status=0
read -r beside beside_connect < <(storm beside) || status=$?
[ -e "$TESTDIR/slow.times" ] && fail "the slow open was not held during the storm"
rm -f "$hold"
wait $slow_pid || fail "the slow device's session did not open"
read -r s e < "$TESTDIR/slow.times"
slow_open=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')

printf '%-50s %8s s (slowest connect %s s)\n' \
  "storm of $n devices, alone" "$alone" "$alone_connect" \
  "storm of $n devices, beside a slow open" "${beside:--}" "${beside_connect:--}"
printf '%-50s %8s s\n' "the slow device's open (held during the storm)" "$slow_open"
[ $status -eq 0 ] && [ -n "$beside" ] ||
  fail "the storm stalled behind the slow device (no result within $bound s)"
awk -v c="$beside_connect" -v o="$slow_open" 'BEGIN { exit !(c < o) }' ||
  fail "a connect took longer ($beside_connect s) than the slow open ($slow_open s)"
stop_nbdkit
echo PASS
