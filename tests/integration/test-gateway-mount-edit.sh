#!/bin/bash
# diskfarm-gateway mount, writing: edit/VDISK is the maintenance version,
# read-write.  An ext4 vDisk edited through a loop device; writes durable
# on fsync across a kill -9 of the gateway; fallocate punch and zero;
# the fixed size; one editor farm-wide (the plugin's edit/ export and
# the mount exclude each other); promote shows the new version and
# removes the edit file without a remount; deleted versions go away
# while an open file keeps reading.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"
requires_gateway_mount
requires losetup --version
requires nbdinfo --version
requires fallocate --version
requires qemu-img --version

make_vdisk_farm                         # base: ext4 holding /marker
make_image "$TESTDIR/data.raw" 16M 0:6
df vdisk import data "$TESTDIR/data.raw" >/dev/null
cp "$TESTDIR/data.raw" "$TESTDIR/ref.raw"
M=$TESTDIR/mnt
start_mount "$M"
start_nbdkit

[ "$(df version new base)" = 2 ] || fail "version new base"
[ "$(df version new data)" = 2 ] || fail "version new data"
# New maintenance versions show at once: negative names are not cached.
[ "$(ls "$M/edit")" = "$(printf 'base\ndata')" ] || fail "edit/: $(ls "$M/edit")"
[ "$(stat -c '%s %A' "$M/edit/data")" = "$((16 << 20)) -rw-------" ] ||
  fail "edit file attributes"
[ "$(ls "$M/img/data")" = "$(printf '1\nproduction')" ] ||
  fail "a maintenance version is listed under img/"

# ---- ext4 read-write through a loop device ----
loop=$(loop_setup "$M/edit/base")
cleanup_fn "loop_release $loop 2>/dev/null"
mkdir "$TESTDIR/ext4"
mount "$loop" "$TESTDIR/ext4"
cleanup_fn "umount '$TESTDIR/ext4' 2>/dev/null"
echo "version 2 marker" > "$TESTDIR/ext4/marker"
mkdir "$TESTDIR/ext4/newdir"
umount "$TESTDIR/ext4"
loop_release "$loop"

# ---- writes are durable on fsync, across a kill -9 ----
head -c 1M /dev/urandom > "$TESTDIR/patch"
dd if="$TESTDIR/patch" of="$M/edit/data" bs=1M seek=8 conv=notrunc,fsync \
  status=none
dd if="$TESTDIR/patch" of="$TESTDIR/ref.raw" bs=1M seek=8 conv=notrunc \
  status=none
cmp "$M/edit/data" "$TESTDIR/ref.raw" || fail "write through edit/ differs"
kill -9 $MOUNT_PID
wait $MOUNT_PID 2>/dev/null || true
start_mount "$M"
cmp "$M/edit/data" "$TESTDIR/ref.raw" || fail "an fsync'd write was lost"

# ---- fallocate: punched holes and zeroed ranges read as zeros ----
fallocate -p -o 1M -l 2M "$M/edit/data"
fallocate -z -o $((3 << 20 | 100)) -l 10000 "$M/edit/data"
fallocate -p -o $((5 << 20 | 7)) -l 5000 "$M/edit/data"     # partial blocks
for r in $((1 << 20)):$((2 << 20)) $((3 << 20 | 100)):10000 \
         $((5 << 20 | 7)):5000; do
  dd if=/dev/zero of="$TESTDIR/ref.raw" bs=64K iflag=count_bytes \
    oflag=seek_bytes seek="${r%%:*}" count="${r##*:}" conv=notrunc status=none
done
cmp "$M/edit/data" "$TESTDIR/ref.raw" || fail "fallocate"
/usr/bin/python3 - "$M/edit/data" <<'EOF' || fail "no hole where one was punched"
import os, sys
M = 1 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_HOLE) == M
assert os.lseek(fd, M, os.SEEK_DATA) == 3 * M
EOF

# ---- the size is fixed; nothing past the end ----
expect_fail "Operation not permitted" truncate -s 1M "$M/edit/data"
expect_fail "Operation not permitted" sh -c ": > '$M/edit/data'"
expect_fail "No space left on device" dd if=/dev/zero of="$M/edit/data" \
  bs=4k seek=$((16 << 8)) count=1 conv=notrunc status=none
cmp "$M/edit/data" "$TESTDIR/ref.raw" || fail "a refused change changed data"

# ---- qemu-img convert -n into an edit file: zeros become holes ----
make_image "$TESTDIR/q1.raw" 8M 0:8
df vdisk import q "$TESTDIR/q1.raw" >/dev/null
[ "$(df version new q)" = 2 ] || fail "version new q"
make_image "$TESTDIR/q2.raw" 8M 0:2 6:2
qemu-img convert -f raw -O qcow2 "$TESTDIR/q2.raw" "$TESTDIR/q2.qcow2"
qemu-img convert -n -f qcow2 -O raw "$TESTDIR/q2.qcow2" "$M/edit/q"
qemu-img compare -q -f raw -F raw "$M/edit/q" "$TESTDIR/q2.raw" ||
  fail "qemu-img convert -n into edit/q"
qemu-img map -f raw --output=json "$M/edit/q" > "$TESTDIR/qmap.json"
/usr/bin/python3 - "$TESTDIR/qmap.json" <<'EOF' || fail "zeros written as data"
import json, sys
M = 1 << 20
data = [(e["start"], e["length"]) for e in json.load(open(sys.argv[1]))
        if e["data"]]
assert data == [(0, 2 * M), (6 * M, 2 * M)], data
EOF
df version promote q 2 production >/dev/null
cmp "$M/img/q/2" "$TESTDIR/q2.raw" || fail "promoted q differs"

# ---- one editor: the mount holds it, the plugin's edit/ export waits ----
exec 3<>"$M/edit/data"
if nbdinfo "$(nbd_uri edit/data)" >/dev/null 2>&1; then
  fail "the plugin opened edit/data while the mount edits it"
fi
grep -q '"data" version 2 is being edited elsewhere' "$TESTDIR/nbdkit.log" ||
  fail "the plugin did not say why"
expect_fail "open for writing elsewhere" df version promote data 2 production
exec 3>&-

# ... and the plugin holds it: the mount's open is refused.  FUSE sends
# the release of the last close after close() returned, so the mount
# lets go of the lock a moment later.
wait_for 10 "the mount to let go of edit/data" nbdinfo "$(nbd_uri edit/data)"
/usr/bin/nbdsh -u "$(nbd_uri edit/data)" -c "
import os, time
open('$TESTDIR/holding', 'w').close()
while not os.path.exists('$TESTDIR/release'):
    time.sleep(0.05)
" &
holder=$!
cleanup_fn "touch '$TESTDIR/release'; wait $holder 2>/dev/null"
wait_for 10 "the plugin's editor" test -e "$TESTDIR/holding"
expect_fail "Device or resource busy" dd if="$M/edit/data" of=/dev/null \
  count=1 status=none
grep -q "edit/data: .*being edited elsewhere" "$TESTDIR/gateway.log" ||
  fail "the gateway did not log why"
touch "$TESTDIR/release"
wait $holder
# nbdkit lets go a moment after its client left.
wait_for 10 "the plugin to let go of edit/data" dd if="$M/edit/data" of=/dev/null count=1 status=none

# ---- promote: the new version appears, the edit file goes ----
df version promote base 2 production >/dev/null
df version promote data 2 production >/dev/null
[ "$(ls "$M/img/data")" = "$(printf '1\n2\nproduction')" ] ||
  fail "img/data/ after promote: $(ls "$M/img/data")"
[ "$(readlink "$M/img/data/production")" = 2 ] || fail "production link"
wait_for 5 "edit/data to go" test ! -e "$M/edit/data"
[ -z "$(ls "$M/edit")" ] || fail "edit/ after promote: $(ls "$M/edit")"
cmp "$M/img/data/2" "$TESTDIR/ref.raw" || fail "promoted version differs"
df vdisk export data@2 "$TESTDIR/data2.raw" >/dev/null
cmp "$M/img/data/production" "$TESTDIR/data2.raw" || fail "differs from export"
loop=$(loop_setup -r "$M/img/base/2")
cleanup_fn "loop_release $loop 2>/dev/null"
mount -o ro "$loop" "$TESTDIR/ext4"
[ "$(cat "$TESTDIR/ext4/marker")" = "version 2 marker" ] || fail "ext4 edit lost"
[ -d "$TESTDIR/ext4/newdir" ] || fail "ext4 directory lost"
umount "$TESTDIR/ext4"
loop_release "$loop"

# ---- versions that go away disappear; an open file keeps reading ----
df version merge data >/dev/null                 # 3: 2 as a base
exec 4<"$M/img/data/2"
cmp "$M/img/data/1" "$TESTDIR/data.raw" || fail "version 1"
df version delete data 2 >/dev/null
df version delete data 1 >/dev/null
wait_for 5 "img/data/2 to go" test ! -e "$M/img/data/2"
wait_for 5 "img/data/1 to go" test ! -e "$M/img/data/1"
[ "$(ls "$M/img/data")" = "$(printf '3\nproduction')" ] ||
  fail "img/data/ after delete: $(ls "$M/img/data")"
[ "$(readlink "$M/img/data/production")" = 3 ] || fail "production is not 3"
cmp - "$TESTDIR/ref.raw" <&4 || fail "an open file lost its version"
exec 4<&-
cmp "$M/img/data/3" "$TESTDIR/ref.raw" || fail "merged version differs"
! grep "error" "$TESTDIR/gateway.log" || fail "the gateway logged errors"
stop_mount_status $MOUNT_PID || fail "gateway exit status $? on SIGTERM"
echo PASS
