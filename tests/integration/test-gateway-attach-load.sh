#!/bin/bash
# diskfarm-gateway attach --farm starts on the least loaded server, as
# the servers' gateways report it (GET /v1/status): a server whose
# gateway answers comes before one whose gateway does not, whatever the
# list order; with equal loads, the farm's order holds; a server with a
# device session comes after one with none.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"
need nbdkit --version
need curl --version
need jq --version
need /usr/bin/nbdsh --version

make_vdisk_farm device 64M
add_servers srv2
for s in srv1 srv2; do
  port=$(free_tcp_port)
  df server set $s --address "127.0.0.1:$port"
  env $(sanitizer_preload "$PLUGIN") \
    nbdkit -f -i 127.0.0.1 -p "$port" "$PLUGIN" farm="$TESTDIR/farm" server=$s \
    stats-dir="$TESTDIR/stats-$s" 2>>"$TESTDIR/$s.log" &
  SERVER_PID[$s]=$!
  cleanup_fn "kill ${SERVER_PID[$s]} 2>/dev/null; wait ${SERVER_PID[$s]} 2>/dev/null"
  wait_for 20 "nbdkit $s" nbdinfo --list "nbd://127.0.0.1:$port"
  declare "port_$s=$port"
done

# Only srv2's gateway answers (srv1's is on a port nobody listens on).
start_gateway g2 --server srv2 --stats-dir "$TESTDIR/stats-srv2"
df server set srv2 --gateway "127.0.0.1:$GW_PORT"
df server set srv1 --gateway "127.0.0.1:$(free_tcp_port)"
start_attach a dev/pc1@load1 --farm "$TESTDIR/farm" \
  --nbd-socket "$TESTDIR/a.sock" --overlay "$TESTDIR/a.layer"
attach_log a | grep -q "from 127.0.0.1:$port_srv2" ||
  { attach_log a >&2; fail "the attach did not start on the server whose gateway answered"; }
stop_attach a

# Both answer, with the same load: the farm's order.
start_gateway g1 --server srv1 --stats-dir "$TESTDIR/stats-srv1"
df server set srv1 --gateway "127.0.0.1:$GW_PORT"
start_attach b dev/pc1@load2 --farm "$TESTDIR/farm" \
  --nbd-socket "$TESTDIR/b.sock" --overlay "$TESTDIR/b.layer"
attach_log b | grep -q "from 127.0.0.1:$port_srv1" ||
  { attach_log b >&2; fail "equal loads did not keep the farm's order"; }
stop_attach b

# srv1 serves a device session (another client's): srv2 goes first.
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache ram
/usr/bin/nbdsh -u "nbd://127.0.0.1:$port_srv1/dev/pc2@busy" -c "
import os, time
h.pread(4096, 0)
for _ in range(600):
    if os.path.exists('$TESTDIR/done'):
        break
    time.sleep(0.1)" &
busy=$!
cleanup_fn "touch '$TESTDIR/done'; wait $busy 2>/dev/null"
g1_busy () {
  [ "$(curl -sf "http://127.0.0.1:$GW_PORT/v1/status" | jq '.load > 0')" = true ]
}
wait_for 30 "srv1's gateway to count the session" g1_busy
start_attach c dev/pc1@load3 --farm "$TESTDIR/farm" \
  --nbd-socket "$TESTDIR/c.sock" --overlay "$TESTDIR/c.layer"
attach_log c | grep -q "from 127.0.0.1:$port_srv2" ||
  { attach_log c >&2; fail "the attach did not start on the less loaded server"; }
stop_attach c
touch "$TESTDIR/done"
wait $busy || fail "the other client's session"
stop_gateways
echo PASS
