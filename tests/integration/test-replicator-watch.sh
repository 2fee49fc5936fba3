#!/bin/bash
# diskfarm-replicator watch: a promote, a new version and a new device on
# the source reach the other server within seconds, without a timer; a
# source that goes away and comes back is followed again.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
repl_farm 2
repl_import base 16M
repl_start_gateways
cp -a "$TESTDIR/farm" "$TESTDIR/farm2"         # srv2's own farm directory

"$REPLICATOR" watch --farm "$TESTDIR/farm2" --server srv2 --interval 1 \
  >"$TESTDIR/watch.log" 2>&1 &
WATCH=$!
cleanup_fn "kill $WATCH 2>/dev/null; wait $WATCH 2>/dev/null"

# within SECONDS CMD...: CMD succeeds within that many seconds.
within () {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 10; i++)); do
    "$@" 2>/dev/null && return 0
    kill -0 $WATCH 2>/dev/null || { cat "$TESTDIR/watch.log" >&2; fail "watch died"; }
    sleep 0.1
  done
  cat "$TESTDIR/watch.log" >&2
  fail "not within $limit s: $*"
}
same_file () {
  cmp -s "$1" "$2" && [ "$(stat -c %.9Y "$1")" = "$(stat -c %.9Y "$2")" ]
}
conf1=$TESTDIR/srv1/vdisks/base/vdisk.conf
conf2=$TESTDIR/srv2/vdisks/base/vdisk.conf

within 20 same_file "$conf1" "$conf2"          # the first sync

# A new version in maintenance, then promoted: each step arrives.
df --server srv1 version new base >/dev/null
within 10 same_file "$conf1" "$conf2"
df --server srv1 version promote base 2 test >/dev/null
within 10 same_file "$conf1" "$conf2"
within 10 test -e "$TESTDIR/srv2/vdisks/base/0002.layer"
df --server srv1 version promote base 2 production >/dev/null
within 10 same_file "$conf1" "$conf2"
grep -q "state = production" <(sed -n '/^\[version 2\]/,/^\[/p' "$conf2") ||
  fail "version 2 is not in production on srv2"

# A new device in the farm directory.
df --server srv1 device add pc7 --mac 52:54:00:00:00:07 --vdisk base >/dev/null
within 10 same_file "$TESTDIR/farm/devices.d/pc7.conf" "$TESTDIR/farm2/devices.d/pc7.conf"

# The source goes away; a promote while it is away arrives once it is back.
repl_stop_gateway srv1
df --server srv1 version new base >/dev/null
df --server srv1 version promote base 3 production >/dev/null
repl_start_gateway srv1
within 20 same_file "$conf1" "$conf2"
repl_identical srv1 srv2
echo PASS
