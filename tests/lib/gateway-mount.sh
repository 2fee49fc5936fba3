# diskfarm — helpers for the tests of "diskfarm-gateway mount".  Source
# it after tests/functions.sh:
#   . "$DISKFARM_SRCDIR/tests/lib/gateway-mount.sh"

GATEWAY="$DISKFARM_BUILD/gateway/diskfarm-gateway"

# FUSE is what these tests are about: without /dev/fuse they fail, they
# do not skip.
requires_gateway_mount () {
  requires_root
  [ -c /dev/fuse ] || fail "no /dev/fuse: the FUSE view cannot be tested"
  [ -x "$GATEWAY" ] || fail "$GATEWAY is not built"
  command -v fusermount3 >/dev/null || fail "fusermount3 is missing (fuse3)"
}

# start_mount DIR [OPTIONS...]: runs "diskfarm-gateway mount" of the
# test's farm at DIR until the mount answers; sets MOUNT_PID.  Stopped
# (and a dead mount removed) at exit.  Its log: $TESTDIR/gateway.log.
start_mount () {
  local dir=$1 i
  shift
  # A dead mount there cannot be looked at; the gateway cleans it.
  mkdir -p "$dir" 2>/dev/null || true
  "$GATEWAY" mount --farm "$TESTDIR/farm" "$@" "$dir" \
    2>>"$TESTDIR/gateway.log" &
  MOUNT_PID=$!
  cleanup_fn "stop_mount_at '$dir' $MOUNT_PID"
  # A listing asks the gateway; stat may be answered from a dead mount's
  # cached attributes.
  for ((i = 0; i < 200; i++)); do
    mountpoint -q "$dir" && ls "$dir/img" >/dev/null 2>&1 && return 0
    kill -0 $MOUNT_PID 2>/dev/null || break
    sleep 0.05
  done
  cat "$TESTDIR/gateway.log" >&2
  fail "diskfarm-gateway mount did not come up at $dir"
}

# stop_mount_at DIR PID: SIGTERM, wait (SIGKILL after 10 s); a mount
# still there (the process was killed) is unmounted lazily.
stop_mount_at () {
  stop_pid "$2"
  if mountpoint -q "$1" 2>/dev/null || ! ls "$1" >/dev/null 2>&1; then
    fusermount3 -u -z "$1" 2>/dev/null
  fi
  true
}

# The exit status of the gateway after SIGTERM: stop_mount_status PID.
# A gateway that has not exited 30 s later fails the test.
stop_mount_status () {
  local status=0
  kill -TERM "$1"
  wait_gone "$1" 30 || fail "diskfarm-gateway $1 did not exit on SIGTERM"
  wait "$1" || status=$?
  return $status
}

# A failing test shows what the gateway said (cleanups run before the
# scratch directory goes).
cleanup_fn '[ "$status" -eq 0 ] || [ ! -s "$TESTDIR/gateway.log" ] ||
  { echo "--- gateway log:"; tail -80 "$TESTDIR/gateway.log"; } >&2'
