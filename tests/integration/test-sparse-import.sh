#!/bin/bash
# A 4 GiB sparse image holding 10 MiB of data imports in seconds and takes
# about 10 MiB in the store.
. "$DISKFARM_SRCDIR/tests/functions.sh"

make_farm
make_image "$TESTDIR/sparse.raw" 4G 0:2 1024:3 2047:1 4090:4
start=$(date +%s%N)
df vdisk import sparse "$TESTDIR/sparse.raw" >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
used=$(du -k "$TESTDIR/farm/store/vdisks/sparse/0001.layer" | cut -f1)
echo "import of 4 GiB with 10 MiB of data: ${ms} ms, ${used} KiB in the store"
# 10 MiB of data plus a 256 KiB map and the header.
[ "$used" -le $((11 * 1024)) ] || fail "store holds ${used} KiB for 10 MiB of data"
[ "$used" -ge $((10 * 1024)) ] || fail "store holds only ${used} KiB"

# A qcow2 of the same is just as sparse through qemu-nbd.
qemu-img convert -f raw -O qcow2 "$TESTDIR/sparse.raw" "$TESTDIR/sparse.qcow2"
df vdisk import sparse-q "$TESTDIR/sparse.qcow2" >/dev/null
used=$(du -k "$TESTDIR/farm/store/vdisks/sparse-q/0001.layer" | cut -f1)
[ "$used" -le $((11 * 1024)) ] || fail "qcow2 import holds ${used} KiB"

df vdisk export sparse "$TESTDIR/back.raw"
cmp "$TESTDIR/sparse.raw" "$TESTDIR/back.raw" || fail "sparse round trip differs"
used=$(du -k "$TESTDIR/back.raw" | cut -f1)
[ "$used" -le $((11 * 1024)) ] || fail "export is not sparse (${used} KiB)"
echo PASS
