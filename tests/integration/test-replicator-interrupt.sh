#!/bin/bash
# diskfarm-replicator interrupted: killed with SIGKILL mid-transfer, the
# source's gateway stopped mid-file and mid-delta (a truncated delta),
# and the target's file system full (a small loop-mounted ext4).  After
# each: a clear error, nothing partial under vdisks/, and the next run
# completes (resuming what had arrived) with the stores identical.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires_root
requires python3 -c 1
requires losetup --version
repl_farm 2
repl_import big 192M                    # 96 MiB of data
repl_start_gateways
staging=$TESTDIR/srv2/.replicator/staging

# wait_until SECONDS CMD...: polls CMD until it succeeds, or fails the test.
wait_until () {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  fail "timed out waiting for: $*"
}

# Bytes that have arrived in the staged files of srv2.
staged_bytes () {
  du -B1 -c "$staging"/* 2>/dev/null | tail -1 | cut -f1
}
staged_at_least () {
  [ "$(staged_bytes)" -ge "$1" ]
}

# Starts a sync of srv2 in the background (slow: 16 MiB/s).
start_slow_sync () {
  "$REPLICATOR" sync --farm "$TESTDIR/farm" --server srv2 --bwlimit 16M \
    "$@" >"$TESTDIR/bg.out" 2>&1 &
  SYNC_PID=$!
  cleanup_fn "kill -9 $SYNC_PID 2>/dev/null; wait $SYNC_PID 2>/dev/null"
}

# --- kill -9 mid-transfer, then resume ---
start_slow_sync
wait_until 60 staged_at_least $((16 * 1048576))
kill -9 $SYNC_PID
wait $SYNC_PID 2>/dev/null || true
repl_no_partial srv2
[ ! -e "$TESTDIR/srv2/vdisks/big/0001.layer" ] || fail "a partial layer is live"
[ ! -e "$TESTDIR/srv2/vdisks/big/vdisk.conf" ] || fail "a manifest without its layer"
had=$(staged_bytes)
part=$(ls "$staging"/*.part)
src_mtime=$(stat -c %.9Y "$TESTDIR/srv1/vdisks/big/0001.layer")
[ "$(stat -c %.9Y "$part")" != "$src_mtime" ] || fail "the partial file has the source's mtime"
repl_sync srv2 --json
wire=$(repl_json "t['bytes']['wire_in']")
[ "$wire" -lt $((96 * 1048576 - had + 4 * 1048576)) ] ||
  fail "resume: $wire bytes on the wire after $had had arrived"
repl_identical srv1 srv2
repl_status_identical
[ -z "$(ls "$staging")" ] || fail "staging not empty: $(ls "$staging")"

# --- the source stops mid-file ---
rm -rf "$TESTDIR/srv2/vdisks" "$TESTDIR/srv2/.replicator"
start_slow_sync
wait_until 60 staged_at_least $((8 * 1048576))
repl_stop_gateway srv1 KILL
if wait $SYNC_PID; then fail "the sync succeeded without its source"; fi
grep -q "from srv1" "$TESTDIR/bg.out" || fail "no clear error: $(cat "$TESTDIR/bg.out")"
repl_no_partial srv2
[ ! -e "$TESTDIR/srv2/vdisks/big/vdisk.conf" ] || fail "a manifest without its layer"
repl_start_gateway srv1
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical

# --- the source stops mid-delta: a truncated delta ---
# srv2's copy of the newest layer gets other data in its first 64 MiB:
# the delta carries them, slowly, and the source stops meanwhile.
layer=$(ls "$TESTDIR/srv2/vdisks/big/"*.layer | tail -1)
dd if=/dev/urandom of="$layer" bs=1M seek=1 count=64 conv=notrunc status=none
start_slow_sync
wait_until 60 staged_at_least $((8 * 1048576))
repl_stop_gateway srv1 KILL
if wait $SYNC_PID; then fail "the sync succeeded without its source"; fi
grep -q "from srv1" "$TESTDIR/bg.out" || fail "no clear error: $(cat "$TESTDIR/bg.out")"
repl_no_partial srv2
[ -z "$(ls "$staging")" ] || fail "a half delta stayed: $(ls "$staging")"
repl_start_gateway srv1
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical

# --- the target's file system is full ---
truncate -s 80M "$TESTDIR/small.img"
mkfs.ext4 -q -F "$TESTDIR/small.img"
mkdir -p "$TESTDIR/small"
# Loop devices of our own (mount -o loop may reuse a stale one of the
# same file, with its old size).
mount_small () {
  loopdev=$(losetup -f --show "$TESTDIR/small.img") || fail "no loop device"
  mount "$loopdev" "$TESTDIR/small" || fail "cannot mount $loopdev"
}
umount_small () {
  umount "$TESTDIR/small" && losetup -d "$loopdev"
}
mount_small
cleanup_fn 'umount_small'
rm -rf "$TESTDIR/srv2"
ln -s "$TESTDIR/small" "$TESTDIR/srv2"
repl_sync_fails "No space left on device" srv2
repl_no_partial srv2
[ ! -e "$TESTDIR/srv2/vdisks/big/vdisk.conf" ] || fail "a manifest without its layer"
[ -z "$(ls "$staging")" ] || fail "a partial file keeps the space: $(ls "$staging")"
# Room made (the store moves to a bigger file system): the next run
# completes.
umount_small || fail "cannot unmount the small file system"
truncate -s 400M "$TESTDIR/small.img"
e2fsck -fp "$TESTDIR/small.img" >/dev/null || [ $? -le 1 ] || fail "e2fsck"
resize2fs -f "$TESTDIR/small.img" >/dev/null 2>&1 || fail "resize2fs"
mount_small
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical
echo PASS
