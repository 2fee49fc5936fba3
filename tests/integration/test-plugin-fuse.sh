#!/bin/bash
# A real file system through the plugin: nbdfuse + losetup + mount of the
# ext4 vDisk through dev/ and edit/.  Edit, promote: a new session sees the
# change, a running one keeps its version.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires_root
requires nbdfuse --version
requires test -c /dev/fuse
requires losetup --version

make_vdisk_farm
start_nbdkit

# attach NAME EXPORT: mount the export at $TESTDIR/mnt-NAME.
attach () {
  local name=$1 export=$2 loop
  mkdir -p "$TESTDIR/fuse-$name" "$TESTDIR/mnt-$name"
  nbdfuse "$TESTDIR/fuse-$name" "$(nbd_uri "$export")" &
  echo $! > "$TESTDIR/fusepid-$name"
  for _ in $(seq 100); do [ -e "$TESTDIR/fuse-$name/nbd" ] && break; sleep 0.05; done
  loop=$(losetup -f --show "$TESTDIR/fuse-$name/nbd")
  echo "$loop" > "$TESTDIR/loop-$name"
  mount "$loop" "$TESTDIR/mnt-$name"
  cleanup_fn "detach $name"
}
detach () {
  local name=$1
  mountpoint -q "$TESTDIR/mnt-$name" && umount "$TESTDIR/mnt-$name"
  [ -s "$TESTDIR/loop-$name" ] && losetup -d "$(cat "$TESTDIR/loop-$name")" 2>/dev/null
  : > "$TESTDIR/loop-$name"
  mountpoint -q "$TESTDIR/fuse-$name" && fusermount3 -u "$TESTDIR/fuse-$name"
  # nbdfuse closes its NBD connection as it exits: wait for that.
  [ -s "$TESTDIR/fusepid-$name" ] && wait "$(cat "$TESTDIR/fusepid-$name")"
  : > "$TESTDIR/fusepid-$name"
  true
}

# A device session: the golden marker, and its own writes.
attach old dev/pc1@boot1
[ "$(cat "$TESTDIR/mnt-old/marker")" = "golden marker" ] || fail "marker"
echo "device wrote this" > "$TESTDIR/mnt-old/devfile"
sync

# Edit a new version through edit/.
[ "$(df version new base)" = 2 ] || fail "version new"
attach edit edit/base
echo "version 2 marker" > "$TESTDIR/mnt-edit/marker"
mkdir "$TESTDIR/mnt-edit/newdir"
detach edit
df version promote base 2 production >/dev/null
df vdisk verify base >/dev/null

# The running session keeps version 1 and its own write.
[ "$(cat "$TESTDIR/mnt-old/marker")" = "golden marker" ] || fail "running session changed"
[ "$(cat "$TESTDIR/mnt-old/devfile")" = "device wrote this" ] || fail "device write lost"
detach old

# The next boot session sees version 2 and a clean cache.
attach new dev/pc1@boot2
[ "$(cat "$TESTDIR/mnt-new/marker")" = "version 2 marker" ] || fail "new session on old version"
[ -d "$TESTDIR/mnt-new/newdir" ] || fail "edit lost"
[ ! -e "$TESTDIR/mnt-new/devfile" ] || fail "new session sees the old session's cache"
detach new

# The image export shows the new production version; fsck agrees.
nbdcopy "$(nbd_uri img/base)" "$TESTDIR/v2.raw"
e2fsck -fn "$TESTDIR/v2.raw" >/dev/null || fail "version 2 is not a clean file system"
echo PASS
