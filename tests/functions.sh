# diskfarm — helpers for integration, e2e and bench scripts.  Source it:
#   . "$DISKFARM_SRCDIR/tests/functions.sh"
# meson sets DISKFARM_SRCDIR and DISKFARM_BUILD for every test.

set -euo pipefail

: "${DISKFARM_SRCDIR:?run the tests through meson test}"
: "${DISKFARM_BUILD:?run the tests through meson test}"
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"   # Debian's python for nbdsh
DISKFARM="$DISKFARM_BUILD/gateway/diskfarm"
PLUGIN="$DISKFARM_BUILD/nbdkit-plugin/nbdkit-diskfarm-plugin.so"

# Skip (exit 77) with a reason on stdout, where check-skips finds it.
skip () {
  echo "SKIP: $*"
  exit 77
}

fail () {
  echo "FAIL: $*" >&2
  exit 1
}

# requires CMD [ARGS...]: skip unless the command runs successfully.
requires () {
  "$@" >/dev/null 2>&1 || skip "requires: $*"
}

# free_tcp_port: a TCP port on which no socket of this host is, in any
# state, taken below the kernel's ephemeral range: a port from inside it
# may meanwhile become the local end of someone's outgoing connection
# (busy test runs hold thousands of those in TIME-WAIT), and then the
# server that wanted it fails to bind.
free_tcp_port () {
  local low high p span
  read -r low high </proc/sys/net/ipv4/ip_local_port_range
  span=$((low - 11000))
  while :; do
    if ((span >= 1000)); then
      p=$((11000 + (RANDOM * 32768 + RANDOM) % span))
    else
      p=$((11000 + (RANDOM * 32768 + RANDOM) % 50000))
    fi
    [ -n "$(ss -Htan "( sport = :$p )")" ] || { echo "$p"; return; }
  done
}

requires_root () {
  [ "$(id -u)" -eq 0 ] || skip "needs root"
}

# Every process a test starts carries this tag in its environment, so
# that the end of the test finds any still running, whatever started it
# (daemons that fork away, processes in network namespaces).
DISKFARM_TEST_TAG=$$.$EPOCHREALTIME
export DISKFARM_TEST_TAG

# Cleanup handlers run at exit in reverse order, whatever happened.
# Then the test fails if a process it started is still running.
_cleanup_fns=()
cleanup_fn () {
  _cleanup_fns+=("$*")
}
_run_cleanup () {
  local status=$? i
  set +e
  for ((i = ${#_cleanup_fns[@]} - 1; i >= 0; i--)); do
    eval "${_cleanup_fns[$i]}"
  done
  [ -z "${_sanitizer_failed:-}" ] || [ $status -ne 0 ] || status=1
  _check_left_processes || status=1
  exit $status
}
trap _run_cleanup EXIT

# Loop devices: loop_setup ARGS... sets one up (losetup -f --show ARGS)
# and prints it; loop_release DEV detaches it once.  A test's cleanup
# may call loop_release again: a device number already detached may be
# another test's device by then, and detaching it (lazily, if mounted)
# would take that test's device away.
loop_setup () {
  local dev
  dev=$(losetup -f --show "$@") || return 1
  echo "$dev" >>"$TESTDIR/loop-devices"
  echo "$dev"
}
loop_release () {
  grep -qx "$1" "$TESTDIR/loop-devices" 2>/dev/null || return 0
  sed -i "\|^$1\$|d" "$TESTDIR/loop-devices"
  losetup -d "$1"
}

# Pids of the running processes that carry this test's tag.  Bash
# builtins only: a program run here would carry the tag itself.
_tagged_pids () {
  local d e env
  for d in /proc/[0-9]*; do
    mapfile -d '' env 2>/dev/null <"$d/environ" || continue
    for e in "${env[@]}"; do
      if [ "$e" = "DISKFARM_TEST_TAG=$DISKFARM_TEST_TAG" ]; then
        echo "${d#/proc/}"
        break
      fi
    done
  done
}

# Nothing a test started may outlive it.  Processes a cleanup has just
# signalled get a moment to exit; whatever still runs after that fails
# the test, and is killed so that it is not left behind all the same.
_check_left_processes () {
  local pids deadline=$((SECONDS + 5))
  while pids=$(_tagged_pids); [ -n "$pids" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
  done
  [ -z "$pids" ] && return 0
  echo "FAIL: processes this test started are still running at its end:" >&2
  ps -o pid=,args= -p "$(echo $pids | tr ' ' ,)" >&2
  kill -9 $pids 2>/dev/null
  return 1
}

# stop_pid PID [SIGNAL]: signals a process (TERM by default) and waits
# until it has exited, at most 10 s, then kills it.  For cleanups: it
# says what went wrong but does not exit (the end-of-test check fails
# the test if the process is still there).
stop_pid () {
  local pid=$1 sig=${2:-TERM}
  kill -"$sig" "$pid" 2>/dev/null || return 0
  wait_gone "$pid" 10 && return 0
  echo "process $pid ignored SIG$sig for 10 s: killing it" >&2
  kill -KILL "$pid" 2>/dev/null
  wait_gone "$pid" 30 ||
    { echo "FAIL: process $pid still runs 30 s after SIGKILL" >&2; return 1; }
}
# wait_gone PID SECONDS: waits until the process has exited; status 1
# if it still runs after SECONDS.
wait_gone () {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

# spawn VAR CMD...: runs the program CMD in the background, stopped at
# exit, and sets VAR to its pid.  CMD must be a program, not a shell
# function, so that the pid is the program's own (also through
# "ip netns exec", which execs it).
spawn () {
  local var=$1
  shift
  "$@" &
  printf -v "$var" '%s' "$!"
  cleanup_fn "stop_pid $!"
}

# wait_for SECONDS WHAT CMD...: runs CMD until it succeeds, at most for
# SECONDS; otherwise fails the test with WHAT and CMD's last output.
wait_for () {
  local timeout=$1 what=$2 deadline out
  shift 2
  deadline=$((SECONDS + timeout))
  until out=$("$@" 2>&1); do
    [ $SECONDS -lt $deadline ] ||
      fail "waited $timeout s for $what in vain: $out"
    sleep 0.1
  done
}

# netns_add NS: a network namespace (lo up), deleted at exit together
# with whatever still runs in it.
netns_add () {
  ip netns add "$1" || return 1
  cleanup_fn "netns_delete '$1'"
  ip -n "$1" link set lo up
}

# netns_delete NS: stops every process in the namespace (TERM, then
# KILL after 5 s), then deletes it.  A process in a deleted namespace
# would run on, unreachable.
netns_delete () {
  local ns=$1 sig pids deadline
  for sig in TERM KILL; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] || break
    kill -"$sig" $pids 2>/dev/null
    deadline=$((SECONDS + 5))
    while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] &&
          [ $SECONDS -lt $deadline ]; do
      sleep 0.05
    done
  done
  ip netns delete "$ns" 2>/dev/null
}

# A scratch directory for this test, removed at exit.
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/diskfarm-it.XXXXXX")
cleanup_fn "rm -rf '$TESTDIR'"

# diskfarm with the test's farm.
df () {
  "$DISKFARM" --farm "$TESTDIR/farm" "$@"
}

# A farm with one server and one store, in $TESTDIR/farm.
make_farm () {
  df init --server-name srv1 "$@" >/dev/null
}

# expect_fail "message part" CMD...: the command fails and says so.
expect_fail () {
  local want=$1 out
  shift
  if out=$("$@" 2>&1); then
    fail "expected failure of: $* (output: $out)"
  fi
  case $out in
  *"$want"*) ;;
  *) fail "\"$*\" failed without \"$want\": $out" ;;
  esac
}

# A raw image of SIZE with random data in the given MiB ranges:
#   make_image FILE SIZE [OFFSET_MIB:LEN_MIB]...
make_image () {
  local file=$1 size=$2 range
  shift 2
  truncate -s "$size" "$file"
  for range in "$@"; do
    dd if=/dev/urandom of="$file" bs=1M seek="${range%%:*}" count="${range##*:}" \
       conv=notrunc status=none
  done
}

# Runs nbdkit with the diskfarm plugin (and any further arguments) on a
# private unix socket, logging to $TESTDIR/nbdkit.log; sets $NBD_SOCK and
# $NBD_PID.  Stopped at exit.  Call again after stopping it to restart.
# Verbose (every request logged) unless NBDKIT_VERBOSE is empty, as
# benchmarks want it.  Its sessions' figures go to $TESTDIR/stats (where
# start_gateway looks) unless the arguments say otherwise.  Another
# one beside it: NBD_SOCK_NEXT=PATH start_nbdkit ...
start_nbdkit () {
  NBD_SOCK=${NBD_SOCK_NEXT:-$TESTDIR/nbd.sock}
  rm -f "$NBD_SOCK" "$NBD_SOCK.pid"
  # The pid file is written once nbdkit listens: the socket exists a
  # moment earlier (bind before listen), when a client is refused.
  env $(sanitizer_preload "$PLUGIN") \
    nbdkit -f ${NBDKIT_VERBOSE--v} -U "$NBD_SOCK" -P "$NBD_SOCK.pid" \
    "$PLUGIN" farm="$TESTDIR/farm" stats-dir="$TESTDIR/stats" "$@" \
    2>>"$TESTDIR/nbdkit.log" &
  NBD_PID=$!
  cleanup_fn "_nbdkit_stop $NBD_PID TERM; sanitizer_check"
  for _ in $(seq 200); do
    [ -s "$NBD_SOCK.pid" ] && return 0
    kill -0 $NBD_PID 2>/dev/null || break
    sleep 0.05
  done
  cat "$TESTDIR/nbdkit.log" >&2
  fail "nbdkit did not start"
}

# Stops the captive nbdkit and waits until it has exited: stop_nbdkit
# [SIGNAL].
stop_nbdkit () {
  _nbdkit_stop "$NBD_PID" "${1:-TERM}"
  sanitizer_check
}

# _nbdkit_stop PID SIGNAL.  A sanitizer runtime preloaded into nbdkit can
# deadlock in the exit handlers of nbdkit's own libraries (glibc's locale
# lock, from libp11-kit's destructor) after the plugin has unloaded: a
# bounded wait, then SIGKILL, once the plugin's unload is in the log.
_nbdkit_stop () {
  local pid=$1 sig=$2 unloads i grace=20
  if [ -z "$(sanitizer_preload "$PLUGIN")" ]; then
    stop_pid "$pid" "$sig"
    return 0
  fi
  unloads=$(grep -c 'unload plugin' "$TESTDIR/nbdkit.log" 2>/dev/null || true)
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    if [ "$(grep -c 'unload plugin' "$TESTDIR/nbdkit.log")" -gt "$unloads" ]; then
      [ $((grace -= 1)) -gt 0 ] || break
    fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    [ "$grace" -eq 0 ] || {
      echo "FAIL: nbdkit $pid did not unload the plugin in 30 s" >&2
      _sanitizer_failed=1
    }
    kill -KILL "$pid" 2>/dev/null
  fi
  # A sanitizer build's exit unmaps a large shadow: slow on a busy host.
  wait_gone "$pid" 30 ||
    { echo "FAIL: nbdkit $pid still runs 30 s after it was stopped" >&2; return 1; }
}

# A sanitizer build's plugin runs in Debian's nbdkit, which is not built
# with the sanitizer: its runtime must come first.  Prints the
# environment for nbdkit (nothing for a normal build).
sanitizer_preload () {
  local lib
  lib=$(ldd "$1" | awk '/lib(asan|tsan)\.so/ { print $3; exit }')
  case $lib in
  *asan*)
    echo "LD_PRELOAD=$lib"
    # nbdkit's own allocations at exit are not ours to judge.
    echo "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    ;;
  *tsan*)
    echo "LD_PRELOAD=$lib"
    echo "TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    ;;
  esac
}

# Fails the test if a sanitizer reported anything in nbdkit's log.
sanitizer_check () {
  [ -f "$TESTDIR/nbdkit.log" ] || return 0
  if grep -Eq 'ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
       "$TESTDIR/nbdkit.log"; then
    grep -E -A40 'Sanitizer|runtime error:' "$TESTDIR/nbdkit.log" >&2 || true
    echo "FAIL: a sanitizer reported an error in nbdkit (above)" >&2
    _sanitizer_failed=1
    return 1
  fi
}

# The NBD URI of an export of the captive nbdkit.
nbd_uri () {
  echo "nbd+unix:///$1?socket=$NBD_SOCK"
}

# A farm with vDisk "base" (SIZE, default 64M: ext4 holding /marker) and
# device pc1 (cache MODE, default ram+disk) booting it.
make_vdisk_farm () {
  local cache=${1:-ram+disk} size=${2:-64M}
  make_farm
  mkdir -p "$TESTDIR/rootfs"
  echo "golden marker" > "$TESTDIR/rootfs/marker"
  truncate -s "$size" "$TESTDIR/base.raw"
  mkfs.ext4 -q -d "$TESTDIR/rootfs" "$TESTDIR/base.raw"
  df vdisk import base "$TESTDIR/base.raw" >/dev/null
  df device add pc1 --mac 52:54:00:00:00:01 --vdisk base --cache "$cache"
}

# nbdsh -c SCRIPT against an export (Debian's python, whatever PATH says).
nbdsh_run () {
  local export=$1
  shift
  /usr/bin/nbdsh -u "$(nbd_uri "$export")" "$@"
}
