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
  nbdkit -f ${NBDKIT_VERBOSE--v} -U "$NBD_SOCK" "$PLUGIN" farm="$TESTDIR/farm" "$@" \
    2>>"$TESTDIR/nbdkit.log" &
  NBD_PID=$!
  cleanup_fn "kill $NBD_PID 2>/dev/null; wait $NBD_PID 2>/dev/null"
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
  kill -"${1:-TERM}" "$NBD_PID" 2>/dev/null || true
  wait "$NBD_PID" 2>/dev/null || true
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
