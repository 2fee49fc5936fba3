#!/bin/bash
# Images made with qemu-img import and export back byte-identical.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires qemu-img --version

make_farm
make_image "$TESTDIR/disk.raw" 64M 0:4 10:1 33:7 63:1
for fmt in raw qcow2 vmdk vhdx; do
  src="$TESTDIR/disk.$fmt"
  [ $fmt = raw ] || qemu-img convert -f raw -O $fmt "$TESTDIR/disk.raw" "$src"
  df vdisk import "d-$fmt" "$src" >/dev/null
  df vdisk export "d-$fmt" "$TESTDIR/out-$fmt.raw"
  cmp "$TESTDIR/disk.raw" "$TESTDIR/out-$fmt.raw" || fail "$fmt round trip differs"
  df vdisk export "d-$fmt@1" "$TESTDIR/out-$fmt.qcow2" --format qcow2 >/dev/null
  [ "$(qemu-img info --output=json "$TESTDIR/out-$fmt.qcow2" |
       python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = qcow2 ] ||
    fail "export is not qcow2"
  qemu-img compare -q "$TESTDIR/disk.raw" "$TESTDIR/out-$fmt.qcow2" ||
    fail "$fmt -> qcow2 export differs"
done

# A block size other than the default.
df vdisk import big-blocks "$TESTDIR/disk.raw" --block-size 64K >/dev/null
df vdisk info big-blocks | grep -q '^block size  65536$' || fail "block size"
df vdisk export big-blocks "$TESTDIR/out-64k.raw"
cmp "$TESTDIR/disk.raw" "$TESTDIR/out-64k.raw" || fail "64K round trip differs"

# Odd sizes are padded to whole sectors; the data is kept.
head -c 1000000 /dev/urandom > "$TESTDIR/odd.raw"
df vdisk import odd "$TESTDIR/odd.raw" >/dev/null
df vdisk export odd "$TESTDIR/odd-out.raw"
[ "$(stat -c %s "$TESTDIR/odd-out.raw")" = 1000448 ] || fail "odd size not padded"
cmp -n 1000000 "$TESTDIR/odd.raw" "$TESTDIR/odd-out.raw" || fail "odd data differs"

# Failures leave nothing behind and say why.
expect_fail 'already exists' df vdisk import d-raw "$TESTDIR/disk.raw"
expect_fail 'No such file' df vdisk import missing "$TESTDIR/nope.raw"
expect_fail 'invalid vdisk name' df vdisk import ../evil "$TESTDIR/disk.raw"
expect_fail 'power of two' df vdisk import bs "$TESTDIR/disk.raw" --block-size 3000
echo "not an image" > "$TESTDIR/junk.qcow2"
printf 'QFI\xfb\0\0\0\3garbage' > "$TESTDIR/bad.qcow2"
expect_fail 'qemu' df vdisk import bad "$TESTDIR/bad.qcow2"
[ -z "$(ls -A "$TESTDIR/farm/store/vdisks" | grep -v '^d-\|^big-blocks$\|^odd$')" ] ||
  fail "a failed import left files: $(ls -A "$TESTDIR/farm/store/vdisks")"
expect_fail 'no version 9' df vdisk export d-raw@9 "$TESTDIR/x.raw"
expect_fail 'not raw or qcow2' df vdisk export d-raw "$TESTDIR/x.vmdk" --format vmdk
echo PASS
