#!/bin/bash
# diskfarm-gateway mount, reading: the layout, each version's file equal
# to what "diskfarm vdisk export" writes, qemu-img convert, compare and
# map from the files, holes seen by SEEK_DATA/SEEK_HOLE and cp --sparse,
# an ext4 vDisk mounted read-only through a loop device, EROFS for
# writes.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"
requires_gateway_mount
requires qemu-img --version
requires losetup --version

make_vdisk_farm                         # base: ext4 holding /marker
# data: random MiB at [0,2) [5,8) [20,21) of 32, zeros elsewhere.
make_image "$TESTDIR/data.raw" 32M 0:2 5:3 20:1
df vdisk import data "$TESTDIR/data.raw" >/dev/null
M=$TESTDIR/mnt
start_mount "$M"

# ---- the layout ----
[ "$(ls "$M")" = "$(printf 'edit\nimg')" ] || fail "root: $(ls "$M")"
[ "$(ls "$M/img")" = "$(printf 'base\ndata')" ] || fail "img/: $(ls "$M/img")"
[ "$(ls "$M/img/base")" = "$(printf '1\nproduction')" ] || fail "img/base/"
[ "$(readlink "$M/img/base/production")" = 1 ] || fail "production link"
[ -z "$(ls "$M/edit")" ] || fail "edit/ lists a vDisk with no maintenance version"
[ "$(stat -c '%s %A' "$M/img/data/1")" = "$((32 << 20)) -r--r--r--" ] ||
  fail "attributes: $(stat -c '%s %A' "$M/img/data/1")"
# Allocated size: the 6 MiB of data, not the holes.
[ "$(stat -c %b "$M/img/data/1")" = $((6 << 11)) ] ||
  fail "st_blocks $(stat -c %b "$M/img/data/1")"
for bad in img/nosuch img/data/01 img/data/2 img/data/0 edit/data; do
  [ ! -e "$M/$bad" ] || fail "$bad exists"
done

# ---- contents ----
df vdisk export data@1 "$TESTDIR/data-export.raw" >/dev/null
cmp "$M/img/data/1" "$TESTDIR/data-export.raw" || fail "data@1 differs from export"
cmp "$M/img/data/1" "$TESTDIR/data.raw" || fail "data@1 differs from its source"
df vdisk export base "$TESTDIR/base-export.raw" >/dev/null
cmp "$M/img/base/production" "$TESTDIR/base-export.raw" ||
  fail "base production differs from export"

# ---- qemu-img ----
qemu-img convert -f raw -O qcow2 "$M/img/data/1" "$TESTDIR/data.qcow2"
qemu-img compare -q -f raw -F qcow2 "$M/img/data/1" "$TESTDIR/data.qcow2" ||
  fail "qemu-img convert from the mount differs"
qemu-img compare -q -f raw -F raw "$M/img/data/1" "$TESTDIR/data.raw" ||
  fail "qemu-img compare: mount and source differ"
qemu-img map -f raw --output=json "$M/img/data/1" > "$TESTDIR/map.json"
/usr/bin/python3 - "$TESTDIR/map.json" <<'EOF' || fail "qemu-img map sees no holes"
import json, sys
M = 1 << 20
data = [(e["start"], e["length"]) for e in json.load(open(sys.argv[1]))
        if e["data"]]
assert data == [(0, 2 * M), (5 * M, 3 * M), (20 * M, M)], data
EOF

# ---- SEEK_DATA / SEEK_HOLE, cp --sparse ----
/usr/bin/python3 - "$M/img/data/1" <<'EOF' || fail "lseek"
import errno, os, sys
M = 1 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_DATA) == 0
assert os.lseek(fd, 0, os.SEEK_HOLE) == 2 * M
assert os.lseek(fd, 2 * M + 5, os.SEEK_DATA) == 5 * M
assert os.lseek(fd, 6 * M, os.SEEK_HOLE) == 8 * M
assert os.lseek(fd, 8 * M, os.SEEK_DATA) == 20 * M
assert os.lseek(fd, 21 * M, os.SEEK_HOLE) == 21 * M
try:
    os.lseek(fd, 21 * M, os.SEEK_DATA)
    raise AssertionError("SEEK_DATA past the last data")
except OSError as e:
    assert e.errno == errno.ENXIO, e
EOF
cp --sparse=auto "$M/img/data/1" "$TESTDIR/sparse-copy.raw"
cmp "$TESTDIR/sparse-copy.raw" "$TESTDIR/data.raw" || fail "cp copy differs"
blocks=$(stat -c %b "$TESTDIR/sparse-copy.raw")
[ "$blocks" -le $((7 << 11)) ] || fail "cp --sparse wrote holes: $blocks blocks"

# ---- an ext4 vDisk through a loop device ----
loop=$(loop_setup -r "$M/img/base/production")
cleanup_fn "loop_release $loop 2>/dev/null"
mkdir "$TESTDIR/ext4"
mount -o ro "$loop" "$TESTDIR/ext4"
cleanup_fn "umount '$TESTDIR/ext4' 2>/dev/null"
[ "$(cat "$TESTDIR/ext4/marker")" = "golden marker" ] || fail "marker"
umount "$TESTDIR/ext4"
loop_release "$loop"

# ---- read-only files ----
expect_fail "Read-only file system" dd if=/dev/zero of="$M/img/data/1" \
  bs=4k count=1 conv=notrunc status=none
expect_fail "Read-only file system" truncate -s 1M "$M/img/data/1"
expect_fail "Read-only file system" touch "$M/img/data/1"
expect_fail "Read-only file system" chmod 644 "$M/img/data/1"
cmp "$M/img/data/1" "$TESTDIR/data.raw" || fail "a refused write changed data"

# ---- SIGTERM unmounts, exit status 0 ----
stop_mount_status $MOUNT_PID || fail "gateway exited with $? on SIGTERM"
! mountpoint -q "$M" || fail "still mounted after SIGTERM"
grep -q "unmounted" "$TESTDIR/gateway.log" || fail "no unmount logged"
echo PASS
