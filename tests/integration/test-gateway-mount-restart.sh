#!/bin/bash
# diskfarm-gateway mount across its life: a kill -9 leaves a dead mount
# (ENOTCONN) that the next start removes; a second gateway at a live
# mount point is refused; SIGTERM unmounts, also with a file open; a
# store added to farm.conf shows up without a remount; bad arguments get
# a clear error and mount nothing.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"
requires_gateway_mount

make_vdisk_farm
df vdisk export base "$TESTDIR/base.raw" >/dev/null
M=$TESTDIR/mnt
start_mount "$M"
cmp "$M/img/base/1" "$TESTDIR/base.raw" || fail "first mount"

# ---- kill -9 with a file open: a dead mount, cleaned by the next start ----
exec 3<"$M/img/base/1"
kill -9 $MOUNT_PID
wait $MOUNT_PID 2>/dev/null || true
expect_fail "Transport endpoint is not connected" ls "$M"
exec 3<&-
start_mount "$M"
grep -q "$M: unmounted the dead mount" "$TESTDIR/gateway.log" ||
  fail "the dead mount was not reported"
ls "$M/img/base" >/dev/null || fail "ENOTCONN after the restart"
cmp "$M/img/base/production" "$TESTDIR/base.raw" || fail "after restart"
# The kernel has one mount there, not two stacked.
[ "$(grep -c " $M " /proc/self/mountinfo)" = 1 ] || fail "mounts stacked"

# ---- a live gateway's mount point is refused ----
expect_fail "a running gateway is mounted there" \
  "$GATEWAY" mount --farm "$TESTDIR/farm" "$M"
cmp "$M/img/base/1" "$TESTDIR/base.raw" || fail "the first gateway was hurt"

# ---- a store added to farm.conf appears without a remount ----
make_image "$TESTDIR/other.raw" 8M 1:2
df store add second --path second >/dev/null
df vdisk import other "$TESTDIR/other.raw" --store second >/dev/null
[ "$(ls "$M/img")" = "$(printf 'base\nother')" ] || fail "img/: $(ls "$M/img")"
cmp "$M/img/other/1" "$TESTDIR/other.raw" || fail "a new store's vDisk"
df vdisk remove other >/dev/null
wait_for 5 "img/other to go" test ! -e "$M/img/other"

# ---- SIGTERM with a file open: unmounted, exit 0 ----
exec 3<"$M/img/base/1"
stop_mount_status $MOUNT_PID || fail "exit status $? after SIGTERM"
exec 3<&-
! mountpoint -q "$M" || fail "still mounted after SIGTERM"
[ -z "$(ls -A "$M")" ] || fail "the mount point is not empty"

# ---- bad arguments: a clear error, nothing mounted ----
expect_fail "no MOUNTPOINT" "$GATEWAY" mount --farm "$TESTDIR/farm"
expect_fail "one MOUNTPOINT" "$GATEWAY" mount --farm "$TESTDIR/farm" "$M" "$M"
expect_fail "--threads wants" "$GATEWAY" mount --threads 0 "$M"
touch "$TESTDIR/file"
expect_fail "is not a directory" "$GATEWAY" mount --farm "$TESTDIR/farm" \
  "$TESTDIR/file"
expect_fail "is not a farm" "$GATEWAY" mount \
  --farm "$TESTDIR/nofarm" "$M"
expect_fail 'server "nosuch" is not in the farm' "$GATEWAY" mount \
  --farm "$TESTDIR/farm" --server nosuch "$M"
expect_fail "unknown command" "$GATEWAY" mnt
! mountpoint -q "$M" || fail "a refused start left a mount"

# ---- --help: stdout, 80 columns, exit 0 ----
"$GATEWAY" mount --help > "$TESTDIR/help" || fail "--help failed"
grep -q "^Usage: diskfarm-gateway mount" "$TESTDIR/help" || fail "--help text"
! awk 'length > 80' "$TESTDIR/help" | grep -q . || fail "--help over 80 columns"
"$GATEWAY" --help | grep -q "diskfarm-gateway mount" || fail "program --help"
echo PASS
