#!/bin/bash
# How long a server stop takes after sessions wrote without FLUSH, beside
# what it no longer waits for.  Per round: fio writes 4 KiB blocks at
# random into a disk and a ram+disk session (no FLUSH), the clients go,
# nbdkit gets SIGTERM: the time to its exit.  Then `sync`: the writeback
# of what the sessions wrote, which parking used to wait for (fdatasync
# of each cache file).  Then a restarted server resumes both sessions and
# reads back what fio wrote (fio's verify), so the quick stop is checked
# to keep every write.  Timings never fail it; wrong data does.
#   meson test -C build --suite bench -v bench-plugin-stop.sh
# Environment: BENCH_MIB (vDisk size, default 4096), BENCH_WRITE_MIB
# (written per session, default 512), BENCH_ROUNDS (default 3).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
requires nbdkit --version
requires fio --enghelp=nbd

MIB=${BENCH_MIB:-4096}
WRITE_MIB=${BENCH_WRITE_MIB:-512}
ROUNDS=${BENCH_ROUNDS:-3}
NBDKIT_VERBOSE=

make_farm
truncate -s "${MIB}M" "$TESTDIR/base.raw"
df vdisk import base "$TESTDIR/base.raw" >/dev/null
df device add d --mac 52:54:00:bb:01:01 --vdisk base --cache disk
df device add r --mac 52:54:00:bb:01:02 --vdisk base --cache ram+disk

fio_job () {   # fio_job URI SEED write|verify
  local mode=(--rw=randwrite --do_verify=0)
  [ "$3" = verify ] && mode=(--rw=randwrite --verify_only=1)
  fio --name=s --ioengine=nbd --uri="$1" --bs=4k --iodepth=32 \
      --size="${MIB}M" --io_size="${WRITE_MIB}M" --randseed="$2" \
      --verify=crc32c --verify_fatal=1 "${mode[@]}" \
      --output="$TESTDIR/fio-$2.out" >/dev/null 2>&1 ||
    { cat "$TESTDIR/fio-$2.out" >&2; fail "fio $3 of $1"; }
}

stops= syncs=
for round in $(seq "$ROUNDS"); do
  sync
  start_nbdkit ram-limit=64M
  fio_job "$(nbd_uri "dev/d@s$round")" "$round" write &
  fio_job "$(nbd_uri "dev/r@s$round")" "$((round + 100))" write
  wait $! || fail "fio"
  t0=$(date +%s%N)
  kill -TERM "$NBD_PID"
  wait_gone "$NBD_PID" 600 || fail "nbdkit still runs 600 s after SIGTERM"
  t1=$(date +%s%N)
  sync
  t2=$(date +%s%N)
  stops+=" $(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", ns / 1e9 }')"
  syncs+=" $(awk -v ns=$((t2 - t1)) 'BEGIN { printf "%.2f", ns / 1e9 }')"
  stop_nbdkit
  # Every block fio wrote is there after the restart.
  start_nbdkit ram-limit=64M
  fio_job "$(nbd_uri "dev/d@s$round")" "$round" verify
  fio_job "$(nbd_uri "dev/r@s$round")" "$((round + 100))" verify
  stop_nbdkit
done

median () { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "Server stop after ${WRITE_MIB} MiB of 4 KiB random writes (no FLUSH) into"
echo "a disk and a ram+disk session each, ${MIB} MiB vDisk; $ROUNDS rounds"
printf '%-50s %8s   %s\n' measurement "median s" rounds
printf '%-50s %8s  %s\n' "SIGTERM to nbdkit's exit" "$(echo $stops | median)" "$stops"
printf '%-50s %8s  %s\n' "then sync (the writeback a stop used to wait for)" \
  "$(echo $syncs | median)" "$syncs"
echo PASS
