#!/bin/bash
# fio's nbd engine with verify=crc32c in every write cache mode.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires fio --enghelp=nbd

make_vdisk_farm ram 256M
start_nbdkit

run_fio () {   # run_fio EXPORT NAME [fio options]
  local export=$1 name=$2
  shift 2
  fio --name="$name" --ioengine=nbd --uri="$(nbd_uri "$export")" \
      --size=128M --bs=4k --iodepth=16 --numjobs=1 --direct=1 \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --output-format=terse \
      "$@" >"$TESTDIR/fio-$name.out" 2>&1 ||
    { cat "$TESTDIR/fio-$name.out" >&2; fail "fio $name"; }
}

for mode in ram disk ram+disk persistent; do
  df device set pc1 --cache $mode
  run_fio "dev/pc1@fio-${mode/+/-}" "$mode-randwrite" --rw=randwrite
  run_fio "dev/pc1@fio-${mode/+/-}-seq" "$mode-seq" --rw=write --bs=64k
done

# device: the server exports read-only; the client caches.
df device set pc1 --cache device
nbdinfo "$(nbd_uri dev/pc1@ro)" | grep -q 'is_read_only: true' ||
  fail "device mode is not read-only"

# none: a private vDisk written in place, also verified by fio.
make_image "$TESTDIR/priv.raw" 256M
df vdisk import priv "$TESTDIR/priv.raw" >/dev/null
df vdisk set priv --access private
df device add pc2 --mac 52:54:00:00:00:02 --vdisk priv
run_fio dev/pc2@p1 private-randwrite --rw=randwrite
stop_nbdkit
df vdisk info priv | grep -q 'maintenance' || fail "no private version was made"
echo PASS
