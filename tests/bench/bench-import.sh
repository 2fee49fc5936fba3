#!/bin/bash
# Import and export throughput of a 2 GiB random image, side by side with
# qemu-img convert of the same image in the same run.
#   meson test -C build --suite bench -v bench-import.sh
# An import seals the version: it is hashed and fsync'd before it is
# listed.  qemu-img convert does not fsync, so it is shown with and
# without a following sync(1).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
requires qemu-img --version

MIB=${BENCH_MIB:-2048}
make_farm
random_image "$TESTDIR/src.raw" "$MIB"
sync
bytes=$((MIB << 20))

best () {   # best OF N CMD...: the fastest of N runs
  local n=$1 b=999999 t
  shift
  for _ in $(seq "$n"); do
    "$@" "$TESTDIR/pre" || true
    t=$(secs "$@" "$TESTDIR/run")
    b=$(awk -v a="$b" -v t="$t" 'BEGIN { print (t < a) ? t : a }')
  done
  echo "$b"
}

import_once () {
  [ "$1" = "$TESTDIR/pre" ] && { df vdisk remove v >/dev/null 2>&1 || true; sync; return 0; }
  df vdisk import v "$TESTDIR/src.raw"
}
qemu_convert () {
  [ "$1" = "$TESTDIR/pre" ] && { rm -f "$TESTDIR/q.raw"; sync; return 0; }
  qemu-img convert -f raw -O raw "$TESTDIR/src.raw" "$TESTDIR/q.raw"
}
qemu_convert_sync () {
  [ "$1" = "$TESTDIR/pre" ] && { rm -f "$TESTDIR/q.raw"; sync; return 0; }
  qemu-img convert -f raw -O raw "$TESTDIR/src.raw" "$TESTDIR/q.raw" && sync
}
export_once () {
  [ "$1" = "$TESTDIR/pre" ] && { rm -f "$TESTDIR/e.raw"; sync; return 0; }
  df vdisk export v "$TESTDIR/e.raw"
}

# Rounds alternate the tools (this machine's speed drifts); each keeps
# its best.
t_import=999 t_qemu=999 t_qemu_sync=999 t_export=999
keep () { awk -v a="$1" -v t="$2" 'BEGIN { print (t < a) ? t : a }'; }
for _ in 1 2 3; do
  t_import=$(keep "$t_import" "$(best 1 import_once)")
  t_qemu_sync=$(keep "$t_qemu_sync" "$(best 1 qemu_convert_sync)")
  t_qemu=$(keep "$t_qemu" "$(best 1 qemu_convert)")
  t_export=$(keep "$t_export" "$(best 1 export_once)")
done
cmp "$TESTDIR/e.raw" "$TESTDIR/src.raw" || fail "export differs"

printf '\n%s MiB random image, best of 3 alternating rounds (page cache warm)\n' "$MIB"
printf '%-44s %8s %10s %8s\n' operation seconds MiB/s "vs qemu"
printf '%-44s %8s %10s %8s\n' "diskfarm vdisk import (hash + fsync)" "$t_import" \
  "$(rate $bytes "$t_import")" "$(ratio "$t_qemu_sync" "$t_import")x"
printf '%-44s %8s %10s %8s\n' "qemu-img convert raw->raw + sync" "$t_qemu_sync" \
  "$(rate $bytes "$t_qemu_sync")" "1.00x"
printf '%-44s %8s %10s %8s\n' "qemu-img convert raw->raw (no fsync)" "$t_qemu" \
  "$(rate $bytes "$t_qemu")" "-"
printf '%-44s %8s %10s %8s\n' "diskfarm vdisk export (no fsync)" "$t_export" \
  "$(rate $bytes "$t_export")" "$(ratio "$t_qemu" "$t_export")x"
