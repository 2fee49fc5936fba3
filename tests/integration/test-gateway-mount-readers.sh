#!/bin/bash
# diskfarm-gateway mount under many concurrent readers: cmp, dd with
# O_DIRECT (every request reaches the gateway), qemu-img compare and fio
# random reads on three versions of a vDisk at once, with a fourth
# version edited and promoted meanwhile.  Every byte checked, no error.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"
requires_gateway_mount
requires qemu-img --version
requires fio --version

make_farm
make_image "$TESTDIR/ref1.raw" 64M 0:20 30:10 50:4
df vdisk import data "$TESTDIR/ref1.raw" >/dev/null
M=$TESTDIR/mnt
start_mount "$M" --threads 8

# edit_version V: version V of data, with 4 MiB of new data at V*8 MiB,
# written through edit/ and promoted; ref$V.raw is what it holds.
edit_version () {
  local v=$1
  [ "$(df version new data)" = "$v" ] || fail "version new $v"
  cp "$TESTDIR/ref$((v - 1)).raw" "$TESTDIR/ref$v.raw"
  head -c 4M /dev/urandom > "$TESTDIR/patch$v"
  dd if="$TESTDIR/patch$v" of="$M/edit/data" bs=1M seek=$((v * 8)) \
    conv=notrunc,fsync status=none
  dd if="$TESTDIR/patch$v" of="$TESTDIR/ref$v.raw" bs=1M seek=$((v * 8)) \
    conv=notrunc status=none
  df version promote data "$v" production >/dev/null
}
edit_version 2
edit_version 3
for v in 1 2 3; do
  md5sum < "$TESTDIR/ref$v.raw" > "$TESTDIR/md5-$v"
done

pids=()
# 12 cmp readers through the page cache, 4 at a time per version.
for i in $(seq 12); do
  v=$((i % 3 + 1))
  (for _ in 1 2; do cmp "$M/img/data/$v" "$TESTDIR/ref$v.raw" || exit 1; done) &
  pids+=($!)
done
# 6 O_DIRECT readers: each 1 MiB request goes to the gateway.
for i in $(seq 6); do
  v=$((i % 3 + 1))
  (dd if="$M/img/data/$v" iflag=direct bs=1M status=none | md5sum |
   cmp - "$TESTDIR/md5-$v") &
  pids+=($!)
done
# qemu-img compare, and fio random reads with 8 jobs (errors fail it).
(qemu-img compare -q -f raw -F raw "$M/img/data/2" "$TESTDIR/ref2.raw") &
pids+=($!)
(fio --name=randread --filename="$M/img/data/3" --readonly --rw=randread \
  --bs=4k --direct=1 --numjobs=8 --size=64M --io_size=8M \
  --output="$TESTDIR/fio.out" >/dev/null) &
pids+=($!)
# Meanwhile a new version is made and promoted.
edit_version 4

failed=0
for p in "${pids[@]}"; do
  wait "$p" || failed=$((failed + 1))
done
if [ "$failed" -ne 0 ]; then
  cat "$TESTDIR/fio.out" >&2
  fail "$failed readers failed"
fi
grep -q "err= 0" "$TESTDIR/fio.out" || fail "fio: $(grep err= "$TESTDIR/fio.out")"

[ "$(readlink "$M/img/data/production")" = 4 ] || fail "production is not 4"
cmp "$M/img/data/4" "$TESTDIR/ref4.raw" || fail "version 4"
cmp "$M/img/data/1" "$TESTDIR/ref1.raw" || fail "version 1 changed"
! grep -E "error|warning" "$TESTDIR/gateway.log" ||
  fail "the gateway logged trouble"
stop_mount_status $MOUNT_PID || fail "gateway exit status $? on SIGTERM"
echo PASS
