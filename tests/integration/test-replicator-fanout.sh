#!/bin/bash
# Fan-out: four servers, three of them replicating from srv1 at once.
# A big layer goes to one server first, then from srv1 and that server
# to the other two: srv1 sends it twice, not three times, and every
# store ends identical.  A server that comes second for a file takes it
# from the second holder, a peer.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires python3 -c 1
repl_farm 4
repl_import base 128M                   # 64 MiB of data
repl_start_gateways

pids=()
for s in srv2 srv3 srv4; do
  "$REPLICATOR" sync --farm "$TESTDIR/farm" --server $s --json \
    --bwlimit 64M --fanout-wait 120 >"$TESTDIR/$s.json" 2>"$TESTDIR/$s.err" &
  pids+=($!)
  cleanup_fn "kill $! 2>/dev/null; wait $! 2>/dev/null"
done
for i in 0 1 2; do
  wait ${pids[$i]} || { cat "$TESTDIR"/srv*.err >&2; fail "sync $((i + 2)) failed"; }
done
repl_identical srv1 srv2 srv3 srv4
repl_status_identical

from () {       # from SERVER: where SERVER got the layer
  /usr/bin/python3 -c "
import json
r = json.load(open('$TESTDIR/$1.json'))
t = [x for x in r['trees'] if x['tree'] == 'store'][0]
print([m['from'] for m in t['moved'] if m['path'] == 'vdisks/base/0001.layer'][0])"
}
f2=$(from srv2) f3=$(from srv3) f4=$(from srv4)
echo "layer from: srv2 <- $f2, srv3 <- $f3, srv4 <- $f4"
n=0
for f in $f2 $f3 $f4; do [ "$f" = srv1 ] && n=$((n + 1)); done
[ $n -le 2 ] || fail "srv1 sent the layer $n times"
[ "$f2$f3$f4" != srv1srv1srv1 ] || fail "no server took the layer from a peer"

# A new version that srv3 has already: srv4 and srv2 both lack it, srv4
# comes second and takes it from srv3 (the second holder).
df --server srv1 version new base >/dev/null
df --server srv1 version promote base 2 production >/dev/null
repl_sync srv3 --fanout-wait 0         # srv2 will not come first
repl_sync srv4 --json
[ "$(repl_json "[m['from'] for m in t['moved'] if m['path'].endswith('0002.layer')][0]")" = srv3 ] ||
  fail "the layer did not come from srv3: $(cat "$TESTDIR/sync.out")"
repl_identical srv1 srv3 srv4
echo PASS
