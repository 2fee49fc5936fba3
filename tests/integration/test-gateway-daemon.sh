#!/bin/bash
# The gateway as a daemon: it runs as an unprivileged user when the
# farm and stores are readable, follows farm changes without a restart
# (a new device, a new store path, a broken farm.conf kept out and
# logged), and SIGTERM ends it at once with status 0.  Slow clients:
# connections that dribble their headers from one address neither
# starve another address nor outlive the request timeout.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires_root
requires curl --version
requires jq --version
requires setpriv --version
requires /usr/bin/python3 -c 'import socket'
make_vdisk_farm ram 16M
make_token
chmod 755 "$TESTDIR"
chown -R nobody "$TESTDIR/farm/gateway.token"

# As nobody, who may read the farm and the store but write nothing.
"$GATEWAY" --help >"$TESTDIR/help"
awk 'length > 80 { exit 1 }' "$TESTDIR/help" || fail "--help wider than 80 columns"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$GATEWAY" --farm "$TESTDIR/farm" --listen 127.0.0.1:0 --poll-ms 100 \
  --stats-dir "$TESTDIR/stats" --cache-dir /tmp --max-per-ip 8 \
  --request-timeout 5 >"$TESTDIR/gateway-nobody.log" 2>&1 &
pid=$!
cleanup_fn "stop_gateway $pid"
wait_for 10 "the gateway to listen" grep -q " on 127.0.0.1:" "$TESTDIR/gateway-nobody.log"
GW_URL=http://127.0.0.1:$(sed -n 's/^.* on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
                            "$TESTDIR/gateway-nobody.log")
[ "$(ps -o user= -p $pid)" = nobody ] || fail "not running as nobody"
expect_code 200 /v1/stores/store/manifest
[ "$(jq '.files | length' "$TESTDIR/body")" = 2 ] || fail "$(cat "$TESTDIR/body")"

# Farm changes are followed.
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base >/dev/null
wait_for 10 "pc2 to show" sh -c "curl -sf -H 'Authorization: Bearer $TOKEN' \
  $GW_URL/v1/devices | jq -e '.devices | map(.name) == [\"pc1\", \"pc2\"]'"
expect_code 200 /v1/devices/pc2
[ "$(jq -r .mac "$TESTDIR/body")" = 52:54:00:00:00:02 ] || fail "$(cat "$TESTDIR/body")"
cp "$TESTDIR/farm/farm.conf" "$TESTDIR/farm.conf.good"
echo "[server broken" >>"$TESTDIR/farm/farm.conf"
wait_for 10 "the broken farm to be logged" \
  grep -q "keeping the farm as it was" "$TESTDIR/gateway-nobody.log"
expect_code 200 /v1/devices/pc2
mkdir "$TESTDIR/store2"
cp -a "$TESTDIR/farm/store/." "$TESTDIR/store2"
cp "$TESTDIR/farm.conf.good" "$TESTDIR/farm/farm.conf"
df server set srv1 --store-paths "store:$TESTDIR/store2" >/dev/null
wait_for 10 "the new store path" sh -c "curl -sf $GW_URL/v1/status |
  jq -e '.stores[0].path == \"$TESTDIR/store2\"'"
grep -q "farm $TESTDIR/farm reloaded" "$TESTDIR/gateway-nobody.log" ||
  fail "reload not logged"

# Slow clients from 127.0.0.2 fill their address's share of connections
# and keep sending header bytes; 127.0.0.1 is served all along, and the
# slow ones are cut off after the request timeout.
port=${GW_URL##*:}
/usr/bin/python3 - "$port" >"$TESTDIR/slow.out" <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
conns = []
for i in range(12):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.send(b"GET /v1/status HTTP/1.1\r\n")
    conns.append(s)
start = time.time()
open_ = len(conns)
while time.time() - start < 14 and open_:
    open_ = 0
    for s in conns:
        try:
            s.send(b"X-Slow: y\r\n")
            open_ += 1
        except OSError:
            pass
    time.sleep(0.5)
print("open after %.1fs: %d" % (time.time() - start, open_))
EOF
slow=$!
wait_for 10 "the slow clients to hold 8 connections" sh -c \
  "curl -sf $GW_URL/metrics | grep -q '^diskfarm_gateway_http_connections 9$'"
for i in $(seq 10); do
  curl -sf --max-time 5 -o /dev/null "$GW_URL/v1/status" ||
    fail "a fast client was not served while slow ones held connections"
  sleep 0.2
done
wait $slow
grep -q "open after .*: 0$" "$TESTDIR/slow.out" ||
  fail "slow clients were not cut off: $(cat "$TESTDIR/slow.out")"

# SIGTERM: gone at once, status 0.
kill -TERM $pid
t0=$(date +%s%N)
wait $pid || fail "exit status $? after SIGTERM"
[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ] || fail "slow to stop"
grep -q "stopping (signal 15)" "$TESTDIR/gateway-nobody.log" || fail "no stop logged"
stop_gateways
echo PASS
