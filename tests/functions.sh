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

requires_root () {
  [ "$(id -u)" -eq 0 ] || skip "needs root"
}

# Cleanup handlers run at exit in reverse order, whatever happened.
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
  exit $status
}
trap _run_cleanup EXIT

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
# benchmarks want it.
start_nbdkit () {
  NBD_SOCK="$TESTDIR/nbd.sock"
  rm -f "$NBD_SOCK"
  env $(sanitizer_preload "$PLUGIN") \
    nbdkit -f ${NBDKIT_VERBOSE--v} -U "$NBD_SOCK" "$PLUGIN" farm="$TESTDIR/farm" "$@" \
    2>>"$TESTDIR/nbdkit.log" &
  NBD_PID=$!
  cleanup_fn "_nbdkit_stop $NBD_PID TERM; sanitizer_check"
  for _ in $(seq 200); do
    [ -S "$NBD_SOCK" ] && return 0
    kill -0 $NBD_PID 2>/dev/null || break
    sleep 0.05
  done
  cat "$TESTDIR/nbdkit.log" >&2
  fail "nbdkit did not start"
}

# Stops the captive nbdkit: stop_nbdkit [SIGNAL].
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
  unloads=$(grep -c 'unload plugin' "$TESTDIR/nbdkit.log" 2>/dev/null || true)
  kill -"$sig" "$pid" 2>/dev/null || return 0
  if [ -n "$(sanitizer_preload "$PLUGIN")" ]; then
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
  fi
  wait "$pid" 2>/dev/null || true
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
