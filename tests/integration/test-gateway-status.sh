#!/bin/bash
# diskfarm status with two servers of one farm, each with its own copy
# of the store: identical; then differs when one replica's layer gets a
# flipped byte (its mtime put back, so that only the content hash can
# tell, and then not put back); incomplete when it is cut short;
# missing once that layer is removed; exit 2 when a gateway is down.
# What /v1/status and /v1/vdisks say of the server and its copy.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires jq --version
make_farm
s1=$TESTDIR/farm/store
s2=$TESTDIR/s2
df server set srv1 --store-paths "store:$s1" >/dev/null
df server add srv2 --address 127.0.0.2 --store-paths "store:$s2" >/dev/null
make_image "$TESTDIR/disk.raw" 16M 0:16
df --server srv1 vdisk import base "$TESTDIR/disk.raw" >/dev/null
cp -a "$s1" "$s2"
make_token
start_gateway g1 --server srv1
df server set srv1 --gateway "127.0.0.1:$GW_PORT" >/dev/null
G1_URL=$GW_URL
start_gateway g2 --server srv2
g2=$GW_PID
df server set srv2 --gateway "127.0.0.1:$GW_PORT" >/dev/null

# status_is EXIT VERDICT: diskfarm status exits so, and says so of base@1
# once neither server is still checking its copy.
status_is () {
  local rc=0
  df status --json >"$TESTDIR/st.json" || rc=$?
  [ "$rc" = "$1" ] &&
    [ "$(jq -r '.replicas[0].replicas' "$TESTDIR/st.json")" = "$2" ] &&
    [ "$(jq -r '.replicas[0].checking' "$TESTDIR/st.json")" = false ]
}
wait_for 30 "status: identical" status_is 0 identical
[ "$(jq -r '[.servers[].state] | join(" ")' "$TESTDIR/st.json")" = "up up" ] ||
  fail "servers: $(cat "$TESTDIR/st.json")"
[ "$(jq -r '.replicas[0].vdisk + "@" + (.replicas[0].version | tostring)' \
     "$TESTDIR/st.json")" = base@1 ] || fail "rows: $(cat "$TESTDIR/st.json")"
df status >"$TESTDIR/table"
grep -q "^srv1  *up  *0.00  *0  *0 " "$TESTDIR/table" || fail "$(cat "$TESTDIR/table")"
grep -q "^base  *1  *production  *identical  *-  *srv1:present srv2:present" \
  "$TESTDIR/table" || fail "$(cat "$TESTDIR/table")"

# What srv1 says of itself and of its copy of base@1.
curl -sf "$G1_URL/v1/status" >"$TESTDIR/status.json" || fail "srv1's status"
jq -e --arg store "$s1" '.server == "srv1" and .program == "diskfarm-gateway" and
  (.version | test("^[0-9]+[.]")) and .uptime_s >= 0 and .sessions == 0 and
  .booting == 0 and .load == 0 and .stores[0].name == "store" and
  .stores[0].path == $store and .stores[0].free_bytes > 0 and
  .stores[0].total_bytes >= .stores[0].free_bytes' "$TESTDIR/status.json" \
  >/dev/null || fail "/v1/status: $(cat "$TESTDIR/status.json")"
l1=$s1/vdisks/base/0001.layer
curl -sf -H "Authorization: Bearer $TOKEN" "$G1_URL/v1/vdisks/base" \
  >"$TESTDIR/vd.json" || fail "/v1/vdisks/base"
jq -e --arg h "$(manifest_hash base 1 "$s1")" --argjson size "$(stat -c %s "$l1")" \
  '.name == "base" and .store == "store" and (.versions | length) == 1 and
   (.versions[0] | .num == 1 and .state == "production" and
    .replica == "present" and .size == $size and .hash == $h and
    .verified == "ok")' "$TESTDIR/vd.json" >/dev/null ||
  fail "/v1/vdisks/base: $(cat "$TESTDIR/vd.json")"
[ "$(jint "$TESTDIR/vd.json" 'd["versions"][0]["mtime_ns"]')" = \
  "$(stat -c %.9Y "$l1" | tr -d .)" ] || fail "mtime_ns: $(cat "$TESTDIR/vd.json")"
curl -sf -H "Authorization: Bearer $TOKEN" "$G1_URL/v1/vdisks" |
  jq -e '.server == "srv1" and [.vdisks[].name] == ["base"]' >/dev/null ||
  fail "/v1/vdisks"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
     "$G1_URL/v1/vdisks/nothing")" = 404 ] || fail "/v1/vdisks/nothing"

# A flipped byte in the data of srv2's copy, its mtime put back: the
# size and mtime still match, the content hash does not.
layer=$s2/vdisks/base/0001.layer
size=$(stat -c %s "$layer")
old=$(od -An -tu1 -j $((size - 100)) -N1 "$layer" | tr -d ' ')
printf "\\$(printf '%03o' $(((old + 1) % 256)))" |
  dd of="$layer" bs=1 seek=$((size - 100)) conv=notrunc status=none
touch -r "$s1/vdisks/base/0001.layer" "$layer"
wait_for 30 "status: differs (content)" status_is 1 differs
[ "$(jq -r '.replicas[0].servers.srv2.verified' "$TESTDIR/st.json")" = failed ] ||
  fail "srv2's copy: $(cat "$TESTDIR/st.json")"
[ "$(jq -c '.replicas[0].pending' "$TESTDIR/st.json")" = '["srv2"]' ] ||
  fail "not pending on srv2: $(cat "$TESTDIR/st.json")"
df status >"$TESTDIR/table" || true
grep -q "^base  *1  *production  *differs  *srv2  *srv1:present srv2:damaged" \
  "$TESTDIR/table" || fail "table: $(cat "$TESTDIR/table")"
# ...and the damaged copy is not offered for replication.
curl -sf -H "Authorization: Bearer $TOKEN" "$GW_URL/v1/stores/store/manifest" |
  jq -e '[.files[].kind] | index("layer") == null' >/dev/null ||
  fail "srv2 offers its damaged layer"

# Its mtime not put back either.
touch "$layer"
wait_for 30 "status: differs (mtime)" status_is 1 differs

# Shorter than its manifest says (a copy cut short): incomplete.
truncate -s $((size - 4096)) "$layer"
wait_for 30 "status: incomplete" status_is 1 incomplete
[ "$(jq -r '.replicas[0].servers.srv2.replica' "$TESTDIR/st.json")" = incomplete ] ||
  fail "$(cat "$TESTDIR/st.json")"

rm "$layer"
wait_for 30 "status: missing" status_is 1 missing
[ "$(jq -r '.replicas[0].servers.srv2.replica' "$TESTDIR/st.json")" = missing ] ||
  fail "$(cat "$TESTDIR/st.json")"

stop_gateway "$g2"
rc=0
df status >"$TESTDIR/table" || rc=$?
[ "$rc" = 2 ] || fail "a server down: exit $rc"
grep -q "^srv2  *down  *- .*127.0.0.1" "$TESTDIR/table" || fail "$(cat "$TESTDIR/table")"
rc=0
df session list >"$TESTDIR/sessions" 2>"$TESTDIR/err" || rc=$?
[ "$rc" = 2 ] || fail "session list with a server down: exit $rc"
grep -q "^SERVER  *DEVICE" "$TESTDIR/sessions" || fail "$(cat "$TESTDIR/sessions")"
grep -q "diskfarm: srv2: " "$TESTDIR/err" || fail "$(cat "$TESTDIR/err")"
stop_gateways
echo PASS
