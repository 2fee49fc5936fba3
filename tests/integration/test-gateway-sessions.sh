#!/bin/bash
# Live device sessions through the gateway.  Two nbdkit processes with
# the plugin publish into one stats directory; nbdcopy and fio make
# sessions, and curl sees every one of them in /v1/sessions,
# /v1/devices/NAME, /v1/status and /metrics (promtool clean), with
# counters that move while fio runs, a full write cache counted, and
# states (lingering once the client left).  A killed nbdkit's sessions
# disappear.  A gateway running as nobody sees the sessions too, and
# removes a dead nbdkit's file when the directory lets its group do so
# (root:GROUP 0775, as systemd-tmpfiles makes /run/diskfarm).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires_root
requires curl --version
requires jq --version
requires nbdcopy --version
requires fio --enghelp=nbd
requires promtool --version
requires setpriv --version

MIB=$((1 << 20))
make_farm
make_image "$TESTDIR/base.raw" 32M 0:32
df vdisk import base "$TESTDIR/base.raw" >/dev/null
df device add pc1 --mac 52:54:00:00:00:01 --vdisk base --cache ram >/dev/null
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache disk >/dev/null
df device add pc3 --mac 52:54:00:00:00:03 --vdisk base --cache ram:1M >/dev/null
make_token
start_gateway g1

start_nbdkit
A_SOCK=$NBD_SOCK A_PID=$NBD_PID
NBD_SOCK_NEXT=$TESTDIR/b.sock start_nbdkit
B_SOCK=$NBD_SOCK B_PID=$NBD_PID
uri () {   # uri SOCKET EXPORT
  echo "nbd+unix:///$2?socket=$1"
}
sessions () {   # sessions: /v1/sessions into $TESTDIR/s.json
  gw /v1/sessions >"$TESTDIR/s.json"
  [ "$(code)" = 200 ] || fail "/v1/sessions: HTTP $(code)"
}
# sess DEVICE JQ: a field of the device's session, as /v1/sessions says.
sess () {
  jq -r --arg d "$1" ".sessions[] | select(.device == \$d) | $2" "$TESTDIR/s.json"
}
# shows DEVICE JQ-CONDITION: the device's session is listed and fits.
shows () {
  sessions
  jq -e --arg d "$1" "[.sessions[] | select(.device == \$d)] | length == 1 and
    (.[0] | $2)" "$TESTDIR/s.json" >/dev/null
}

# ---- nbdcopy reads all of pc1 from nbdkit A, and leaves ----
nbdcopy "$(uri "$A_SOCK" dev/pc1@boot1)" "$TESTDIR/pc1.raw"
cmp "$TESTDIR/pc1.raw" "$TESTDIR/base.raw" || fail "pc1 reads other data"
wait_for 10 "pc1's session, lingering" shows pc1 '.state == "lingering"'
[ "$(sess pc1 .bytes_read)" = $((32 * MIB)) ] || fail "pc1: $(cat "$TESTDIR/s.json")"
[ "$(sess pc1 .reads)" -gt 0 ] || fail "pc1 reads"
[ "$(sess pc1 '.export + " " + .session + " " + .vdisk + " " +
     (.version | tostring) + " " + .cache_mode + " " + (.connections | tostring) +
     " " + (.pid | tostring) + " " + .client')" = \
  "dev/pc1@boot1 boot1 base 1 ram 0 $A_PID unix" ] || fail "pc1: $(cat "$TESTDIR/s.json")"
since=$(jint "$TESTDIR/s.json" '[s for s in d["sessions"] if s["device"] == "pc1"][0]["connected_since_ns"]')
now=$(date +%s%N)
[ "$since" -le "$now" ] && [ "$since" -gt $((now - 300 * 1000000000)) ] ||
  fail "connected_since_ns $since (now $now)"

# ---- fio reads and writes pc2 through nbdkit B, rate-limited so that
# the session stays booting (its first 256 MiB) ----
spawn FIO fio --name=pc2 --ioengine=nbd --uri="$(uri "$B_SOCK" dev/pc2@boot1)" \
  --rw=randrw --bs=4k --size=32M --time_based --runtime=120 --rate_iops=200,200 \
  --output="$TESTDIR/fio.out"
wait_for 30 "fio's session on pc2" shows pc2 '.connections >= 1 and .reads > 0 and .writes > 0'
r1=$(sess pc2 .reads) w1=$(sess pc2 .writes) b1=$(sess pc2 .bytes_written)
wait_for 30 "pc2's counters to move" shows pc2 \
  ".reads > $r1 and .writes > $w1 and .bytes_written > $b1"
[ "$(sess pc2 '.state + " " + .cache_mode + " " + (.pid | tostring)')" = \
  "booting disk $B_PID" ] || fail "pc2: $(cat "$TESTDIR/s.json")"
[ "$(sess pc2 .cache_limit)" = $((8 << 30)) ] || fail "pc2's cache limit"
wait_for 10 "pc2's write cache in use" shows pc2 '.cache_bytes > 0'
# The device's page says the same.
expect_code 200 /v1/devices/pc2
jq -e '.sessions | length == 1 and .[0].session == "boot1" and
       .[0].state == "booting"' "$TESTDIR/body" >/dev/null ||
  fail "/v1/devices/pc2: $(cat "$TESTDIR/body")"
expect_code 200 /v1/devices/pc3
jq -e '.sessions == []' "$TESTDIR/body" >/dev/null || fail "pc3: $(cat "$TESTDIR/body")"
# Status: pc2 is booting, pc1 lingers (and weighs nothing).
curl -sf "$GW_URL/v1/status" >"$TESTDIR/status.json"
jq -e '.sessions == 1 and .booting == 1 and .lingering == 1 and .load == 3' \
  "$TESTDIR/status.json" >/dev/null || fail "status: $(cat "$TESTDIR/status.json")"

# ---- pc3's write cache (1 MiB) fills: ENOSPC, counted ----
make_image "$TESTDIR/w.raw" 32M 0:4
# One request in flight: nbdcopy stops at the first error with nothing
# pending (nbdkit 1.32 aborts when a client hangs up on several pending
# replies, fixed upstream in 1.34).
if nbdcopy -C 1 -R 1 "$TESTDIR/w.raw" "$(uri "$B_SOCK" dev/pc3@boot1)" \
    2>"$TESTDIR/copy.err"; then
  fail "4 MiB went into a 1 MiB write cache"
fi
wait_for 10 "pc3's full cache counted" shows pc3 \
  '.cache_full_events > 0 and .errors >= .cache_full_events and
    .cache_limit == 1048576 and .state == "lingering"'

# ---- the metrics, per device ----
curl -sf "$GW_URL/metrics" >"$TESTDIR/m"
promtool check metrics <"$TESTDIR/m" >"$TESTDIR/promtool.out" 2>&1 &&
  [ ! -s "$TESTDIR/promtool.out" ] || fail "promtool: $(cat "$TESTDIR/promtool.out")"
metric () {   # metric NAME DEVICE: its value
  sed -n "s/^$1{device=\"$2\"} //p" "$TESTDIR/m"
}
[ "$(metric diskfarm_device_read_bytes_total pc1)" = $((32 * MIB)) ] ||
  fail "pc1 metrics: $(grep pc1 "$TESTDIR/m")"
[ "$(metric diskfarm_device_write_requests_total pc2)" -gt 0 ] || fail "pc2 writes"
[ "$(metric diskfarm_device_connections pc2)" -ge 1 ] || fail "pc2 connections"
[ "$(metric diskfarm_device_cache_bytes pc2)" -gt 0 ] || fail "pc2 cache bytes"
[ "$(metric diskfarm_device_cache_limit_bytes pc3)" = 1048576 ] || fail "pc3 limit"
[ "$(metric diskfarm_device_read_requests_total pc1)" -gt 0 ] || fail "pc1 reads"
[ "$(metric diskfarm_device_written_bytes_total pc2)" -gt 0 ] || fail "pc2 written"
[ "$(metric diskfarm_device_cache_full_events_total pc3)" -gt 0 ] || fail "pc3 full"
[ "$(metric diskfarm_device_errors_total pc3)" -gt 0 ] || fail "pc3 errors"
grep -q '^diskfarm_sessions{state="booting"} 1$' "$TESTDIR/m" || fail "booting: $(grep diskfarm_sessions "$TESTDIR/m"; cat "$TESTDIR/s.json")"

# ---- diskfarm session list and diskfarm status ask the gateway ----
df server set srv1 --gateway "127.0.0.1:$GW_PORT" >/dev/null
df session list --json >"$TESTDIR/list.json"
jq -e '([.sessions[] | .server + " " + .device + " " + .session] | sort ==
  ["srv1 pc1 boot1", "srv1 pc2 boot1", "srv1 pc3 boot1"]) and .errors == []' \
  "$TESTDIR/list.json" >/dev/null || fail "session list: $(cat "$TESTDIR/list.json")"
df session list >"$TESTDIR/list"
grep -q "^srv1  *pc1  *boot1  *lingering  *unix  *base@1  *0  *32.0 MiB " "$TESTDIR/list" ||
  fail "session list: $(cat "$TESTDIR/list")"
grep -q "^srv1  *pc2  *boot1  *booting  *unix  *base@1  *1 " "$TESTDIR/list" ||
  fail "session list: $(cat "$TESTDIR/list")"
df status --json >"$TESTDIR/st.json"
jq -e '.servers[0].status | .sessions == 1 and .booting == 1 and .load == 3' \
  "$TESTDIR/st.json" >/dev/null || fail "status: $(cat "$TESTDIR/st.json")"

# ---- a gateway as nobody sees them too ----
chmod 755 "$TESTDIR"
chown nobody "$TESTDIR/farm/gateway.token"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$GATEWAY" --farm "$TESTDIR/farm" --listen 127.0.0.1:0 \
  --stats-dir "$TESTDIR/stats" --cache-dir /tmp >"$TESTDIR/gateway-nobody.log" 2>&1 &
NOBODY_PID=$!
cleanup_fn "stop_gateway $NOBODY_PID"
wait_for 10 "the gateway as nobody" grep -q " on 127.0.0.1:" "$TESTDIR/gateway-nobody.log"
NOBODY_URL=http://127.0.0.1:$(sed -n 's/^.* on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
                                "$TESTDIR/gateway-nobody.log")
nobody_sees () {   # nobody_sees JQ-CONDITION on the device names
  curl -sf -H "Authorization: Bearer $TOKEN" "$NOBODY_URL/v1/sessions" |
    jq -e "[.sessions[].device] | sort | $1" >/dev/null
}
nobody_sees '. == ["pc1", "pc2", "pc3"]' || fail "nobody sees other sessions"

# ---- nbdkit B dies: its sessions go; A's stay ----
stop_pid "$FIO"
stop_nbdkit KILL
b_file=$TESTDIR/stats/nbdkit-$B_PID.stats
[ -f "$b_file" ] || fail "B's file went with B"
# nobody cannot remove the file (the directory is root's, 0755), but
# does not show a dead process's sessions.
nobody_sees '. == ["pc1"]' || fail "nobody still sees B's sessions"
[ -f "$b_file" ] || fail "nobody removed a file of root's directory"
wait_for 10 "B's sessions to disappear" shows pc1 '.pid == '"$A_PID"
[ "$(jq '.sessions | length' "$TESTDIR/s.json")" = 1 ] || fail "$(cat "$TESTDIR/s.json")"
[ ! -e "$b_file" ] || fail "the dead process's file is still there"

# With the directory root:nogroup 0775, nobody's gateway cleans up too.
chgrp nogroup "$TESTDIR/stats"
chmod 0775 "$TESTDIR/stats"
NBD_SOCK_NEXT=$TESTDIR/c.sock start_nbdkit
C_PID=$NBD_PID
nbdcopy "$(uri "$TESTDIR/c.sock" dev/pc3@boot2)" "$TESTDIR/pc3.raw"
wait_for 10 "C's session" nobody_sees '. == ["pc1", "pc3"]'
stop_nbdkit KILL
nobody_sees '. == ["pc1"]' || fail "nobody still sees C's sessions"
[ ! -e "$TESTDIR/stats/nbdkit-$C_PID.stats" ] || fail "nobody left C's file"

# ---- A ends cleanly: its file goes with it ----
_nbdkit_stop "$A_PID" TERM
sanitizer_check || fail "nbdkit A"
[ -z "$(ls -A "$TESTDIR/stats")" ] || fail "left in stats: $(ls -A "$TESTDIR/stats")"
sessions
[ "$(jq '.sessions | length' "$TESTDIR/s.json")" = 0 ] || fail "$(cat "$TESTDIR/s.json")"
stop_gateways
stop_gateway "$NOBODY_PID" || fail "the gateway as nobody: $(tail "$TESTDIR/gateway-nobody.log")"
echo PASS
