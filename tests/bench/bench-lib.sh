# diskfarm — helpers for benchmarks (sourced after tests/functions.sh).

# meson test sets MALLOC_PERTURB_ to catch use of uninitialised memory;
# it makes every malloc and free write the whole block.  Not for timing.
unset MALLOC_PERTURB_

# secs CMD...: runs a command and prints its wall time in seconds.
secs () {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null || { echo "bench: failed: $*" >&2; exit 1; }
  end=$(date +%s%N)
  awk -v ns=$((end - start)) 'BEGIN { printf "%.3f", ns / 1e9 }'
}

# rate BYTES SECONDS: MiB/s.
rate () {
  case "$2" in -) echo -; return ;; esac
  awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? b / 1048576 / s : 0) }'
}

# ratio A B: A / B with two decimals.
ratio () {
  case "$1$2" in *-*) echo -; return ;; esac
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

# The peak of the summed RSS (KiB) of a process tree, sampled every
# 100 ms while CMD runs: peak_rss PID CMD...  Prints "PEAK_KIB".
peak_rss () {
  local root=$1 peak=0 pid cur
  shift
  "$@" > "$TESTDIR/peak-cmd.out" &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    cur=$(ps -o rss= --ppid "$root" --pid "$root" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    [ "$cur" -gt "$peak" ] && peak=$cur
    sleep 0.1
  done
  wait $pid
  local status=$?
  echo "$peak"
  return $status
}

# A random raw image: random_image FILE MIB (cached per run in TESTDIR).
random_image () {
  [ -s "$1" ] || head -c "$(($2 << 20))" /dev/urandom > "$1"
}
