#!/bin/bash
# Sequential read of a 2 GiB version, side by side in one run:
#   - diskfarm-gateway mount: cat MOUNT/img/big/1;
#   - nbdfuse over the plugin's img/big export (nbdkit), as shipped
#     (the kernel's 128 KiB read-ahead), and with 1 MiB read-ahead as
#     the gateway sets it;
#   - cat of the flat raw file: the page cache's own speed, the ceiling.
# Every round reads through fresh FUSE mounts (nothing cached in them)
# with the layer and the raw file in the page cache, so the figures are
# those of each path, not of the disk.  Also the CPU time per GiB of the
# reader (cat, in the kernel: it fills the FUSE page cache) and of the
# serving processes.
#   meson test -C build --suite bench -v bench-gateway-mount.sh
# Environment: BENCH_MIB (image size, default 2048), BENCH_ROUNDS (3).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"
requires_gateway_mount
requires nbdkit --version
requires nbdfuse --version

MIB=${BENCH_MIB:-2048}
ROUNDS=${BENCH_ROUNDS:-3}
bytes=$((MIB << 20))
TICK=$(getconf CLK_TCK)
NBDKIT_VERBOSE=

make_farm
random_image "$TESTDIR/flat.raw" "$MIB"
df vdisk import big "$TESTDIR/flat.raw" >/dev/null
layer=$TESTDIR/farm/store/vdisks/big/0001.layer
start_nbdkit
M=$TESTDIR/mnt
F=$TESTDIR/nbdfuse
mkdir -p "$F"

# CPU ticks (user + system, all threads) of the processes given.
ticks () {
  local p sum=0
  for p in "$@"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo $sum
}

# secs_per_gib TICKS: CPU seconds per GiB read.
secs_per_gib () {
  awk -v t="$1" -v hz="$TICK" -v b="$bytes" \
    'BEGIN { printf "%.2f", t / hz / (b / 1073741824) }'
}

warm () {
  cat "$layer" "$TESTDIR/flat.raw" > /dev/null
}

# timed_cat FILE: "WALL_SECONDS READER_CPU_SECONDS_PER_GIB".
timed_cat () {
  /usr/bin/time -f "%e %U %S" -o "$TESTDIR/time.out" cat "$1" > /dev/null ||
    fail "cat $1 failed"
  awk -v b="$bytes" '{ printf "%s %.2f", $1, ($2 + $3) / (b / 1073741824) }' \
    "$TESTDIR/time.out"
}

# Each measure_* prints "SECONDS READER_CPU SERVER_CPU" (CPU seconds
# per GiB; the server: the gateway, or nbdfuse and nbdkit).
measure_cat () {
  warm
  echo "$(timed_cat "$TESTDIR/flat.raw") -"
}

measure_mount () {
  local t0 s
  start_mount "$M"
  warm
  t0=$(ticks $MOUNT_PID)
  s=$(timed_cat "$M/img/big/1")
  echo "$s $(secs_per_gib $(($(ticks $MOUNT_PID) - t0)))"
  stop_mount_status $MOUNT_PID || fail "gateway exit status $?"
}

# measure_nbdfuse [READ_AHEAD_KIB]
measure_nbdfuse () {
  local pid t0 s i
  nbdfuse "$F" "$(nbd_uri img/big)" &
  pid=$!
  for ((i = 0; i < 200; i++)); do [ -e "$F/nbd" ] && break; sleep 0.05; done
  [ -e "$F/nbd" ] || fail "nbdfuse did not start"
  if [ -n "${1:-}" ]; then
    echo "$1" > "/sys/class/bdi/$(mountpoint -d "$F")/read_ahead_kb"
  fi
  warm
  t0=$(ticks $pid $NBD_PID)
  s=$(timed_cat "$F/nbd")
  echo "$s $(secs_per_gib $(($(ticks $pid $NBD_PID) - t0)))"
  # The kernel releases cat's file a moment after cat exits; until then
  # the unmount is refused (EBUSY) and nbdfuse would run on.
  for ((i = 0; i < 100; i++)); do
    fusermount3 -u "$F" 2>/dev/null && break
    sleep 0.05
  done
  mountpoint -q "$F" && fusermount3 -u -z "$F"
  wait $pid
}

median () {
  sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A time rcpu cpu
kinds="cat mount nbdfuse nbdfuse_ra"
for ((r = 1; r <= ROUNDS; r++)); do
  for k in $kinds; do
    case $k in
    cat) out=$(measure_cat) ;;
    mount) out=$(measure_mount) ;;
    nbdfuse) out=$(measure_nbdfuse) ;;
    nbdfuse_ra) out=$(measure_nbdfuse 1024) ;;
    esac
    read -r t rc sc <<< "$out"
    time[$k]+="$t "
    rcpu[$k]+="$rc "
    cpu[$k]+="$sc "
  done
done

rate_of () {
  rate "$bytes" "$(echo ${time[$1]} | tr ' ' '\n' | median)"
}
cpu_of () {
  echo ${cpu[$1]} | tr ' ' '\n' | median
}
rcpu_of () {
  echo ${rcpu[$1]} | tr ' ' '\n' | median
}
# The gateway's read must be the version's bytes.
start_mount "$M"
cmp "$M/img/big/1" "$TESTDIR/flat.raw" || fail "the mount read wrong data"
stop_mount_status $MOUNT_PID

m=$(rate_of mount) n=$(rate_of nbdfuse) nr=$(rate_of nbdfuse_ra) c=$(rate_of cat)
echo
echo "Sequential read of a $MIB MiB version (cat; median of $ROUNDS rounds)"
row () {
  printf "  %-44s %7s %11s %11s\n" "$@"
}
row "path" "MiB/s" "cat CPU" "server CPU"
row "cat of the flat raw file (page cache)" "$c" "$(rcpu_of cat)" "-"
row "diskfarm-gateway mount img/big/1" "$m" "$(rcpu_of mount)" "$(cpu_of mount)"
row "nbdfuse + nbdkit img/big" "$n" "$(rcpu_of nbdfuse)" "$(cpu_of nbdfuse)"
row "nbdfuse + nbdkit img/big, read-ahead 1 MiB" "$nr" "$(rcpu_of nbdfuse_ra)" \
  "$(cpu_of nbdfuse_ra)"
echo "  mount / nbdfuse: $(ratio "$m" "$n")" \
     " mount / nbdfuse read-ahead 1 MiB: $(ratio "$m" "$nr")" \
     " mount / cat: $(ratio "$m" "$c")"
echo "  (CPU: seconds per GiB; server: the gateway, or nbdfuse + nbdkit)"
