#!/bin/bash
# The sequence that once crashed nbdkit (a race): with session-linger=0
# on a 512 MiB vDisk, a disk-mode session named "persistent" writes and
# closes; the device is switched to persistent while nbdkit runs; a new
# session of it reads; fio writes 256 MiB of 4 KiB random writes into
# another device's ram+disk session; then 40 disk-mode sessions of 40
# devices run fio randrw at once.  nbdkit must live through it (a
# sanitizer build's nbdkit also reports nothing) and every byte fio
# verifies must be right.
#   RACE_ROUNDS=N     repeat the whole sequence (default 1)
#   RACE_DEVICES=N    devices of the last step (default 40)
#   RACE_WRITE=SIZE   the ram+disk session's fio size (default 256M)
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires /usr/bin/nbdsh --version
requires fio --enghelp=nbd

rounds=${RACE_ROUNDS:-1}
ndev=${RACE_DEVICES:-40}
wsize=${RACE_WRITE:-256M}

make_vdisk_farm disk 512M
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache ram+disk
for i in $(seq 1 "$ndev"); do
  df device add "d$i" --mac "$(printf '52:54:00:00:10:%02x' "$i")" --vdisk base \
     --cache disk
done
start_nbdkit session-linger=0 ram-limit=16M

alive () {
  kill -0 "$NBD_PID" 2>/dev/null || { tail -50 "$TESTDIR/nbdkit.log" >&2; fail "nbdkit died: $1"; }
}

fio_job () {   # fio_job EXPORT NAME OPTIONS...
  local export=$1 name=$2
  shift 2
  (cd "$TESTDIR" &&
   fio --name="$name" --ioengine=nbd --uri="$(nbd_uri "$export")" \
       --bs=4k --iodepth=8 --direct=1 --verify_state_save=0 \
       --output-format=terse "$@" >"$TESTDIR/fio-$name.out" 2>&1)
}

for round in $(seq 1 "$rounds"); do
  df device set pc1 --cache disk
  nbdsh_run dev/pc1@persistent -c 'h.pwrite(b"P" * 65536, 0); h.flush()'
  df device set pc1 --cache persistent
  nbdsh_run "dev/pc1@r$round" -c 'h.pread(65536, 0)'
  alive "after the persistent switch (round $round)"

  fio_job "dev/pc2@w$round" "rw$round" --rw=randwrite --size="$wsize" ||
    { cat "$TESTDIR/fio-rw$round.out" >&2; fail "fio into ram+disk"; }
  alive "after the ram+disk writes (round $round)"

  pids=()
  for i in $(seq 1 "$ndev"); do
    fio_job "dev/d$i@s$round" "d$i-$round" --rw=randrw --size=16M \
      --verify=crc32c --verify_fatal=1 --do_verify=1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { cat "$TESTDIR/fio-d$((i + 1))-$round.out" >&2;
                            alive "during the storm (round $round)";
                            fail "fio of d$((i + 1)) (round $round)"; }
  done
  alive "after the storm (round $round)"
done
stop_nbdkit
echo PASS
