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

# Runs nbdkit with the diskfarm plugin on a private unix socket and
# sets $NBD_SOCK and $NBD_PID; stopped at exit.
start_nbdkit () {
  NBD_SOCK="$TESTDIR/nbd.sock"
  local pidfile="$TESTDIR/nbdkit.pid"
  rm -f "$NBD_SOCK" "$pidfile"
  nbdkit -U "$NBD_SOCK" -P "$pidfile" "$PLUGIN" farm="$TESTDIR/farm" "$@"
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && break
    sleep 0.05
  done
  [ -s "$pidfile" ] || fail "nbdkit did not start"
  NBD_PID=$(cat "$pidfile")
  cleanup_fn "kill $NBD_PID 2>/dev/null; sleep 0.1"
}
