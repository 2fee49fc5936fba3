#!/bin/bash
# Relays (pipelined fan-out): four servers, srv2..srv4 replicating from
# srv1 at once, every gateway's uplink capped (--upload-rate).  srv2
# takes a big layer from srv1 and, while it arrives, srv3 takes it from
# srv2's staged copy and srv4 from srv3's: srv1 sends it once.  Then a
# relay killed mid-transfer (its peer completes from the source, the
# stores end identical) and a relay whose staged copy holds wrong bytes
# (the content hash catches them: nothing lands, the next run completes).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires python3 -c 1
repl_farm 4
repl_import one 96M                     # 48 MiB of data
for k in 1 2 3 4; do
  repl_start_gateway srv$k --upload-rate 12M --relay-wait 4
done
url="http://127.0.0.1:${REPL_PORT[srv2]}/v1/stores/store/staged"
auth=(-H "Authorization: Bearer $REPL_TOKEN")

# wait_until SECONDS CMD...: polls CMD until it succeeds, or fails the test.
wait_until () {
  local limit=$1 i
  shift
  for ((i = 0; i < limit * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  fail "timed out waiting for: $*"
}
# how SERVER PATH: "HOW FROM" of PATH in SERVER's JSON report.
how () {
  /usr/bin/python3 -c "
import json
t = [x for x in json.load(open('$TESTDIR/$1.json'))['trees'] if x['tree'] == 'store'][0]
m = [m for m in t['moved'] if m['path'] == '$2']
print(m[0]['how'], m[0]['from'] if m else 'nothing')"
}
# start SERVER [ARGS...]: a sync in the background; its pid in PID[SERVER].
declare -A PID
start () {
  local s=$1
  shift
  "$REPLICATOR" sync --farm "$TESTDIR/farm" --server "$s" --store store \
    --json "$@" >"$TESTDIR/$s.json" 2>"$TESTDIR/$s.err" &
  PID[$s]=$!
  cleanup_fn "kill ${PID[$s]} 2>/dev/null; wait ${PID[$s]} 2>/dev/null"
}
finish () {     # finish SERVER: its sync must succeed
  wait "${PID[$1]}" || { cat "$TESTDIR/$1.err" >&2; fail "sync $1 failed"; }
}
# arrived SERVER HASH: bytes the arrival log of SERVER's staged copy names.
arrived () {
  local f=$TESTDIR/$1/.replicator/staging/$2.got
  [ -f "$f" ] && echo $(( $(stat -c %s "$f") / 16 * 512 * 1024 )) || echo 0
}
arrived_at_least () { [ "$(arrived "$1" "$2")" -ge "$3" ]; }
hash_of () {
  /usr/bin/python3 -c "
import json, sys, urllib.request
r = urllib.request.Request('http://127.0.0.1:${REPL_PORT[srv1]}/v1/stores/store/manifest',
    headers={'Authorization': 'Bearer $REPL_TOKEN'})
print([f['hash'] for f in json.load(urllib.request.urlopen(r))['files'] if f['path'] == sys.argv[1]][0])" "$1"
}

# ---- the staged endpoint refuses what it cannot serve ----
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$url/vdisks/one/0001.layer?hash=xyz")
[ "$code" = 400 ] || fail "a bad hash got HTTP $code, not 400"
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" \
  "$url/vdisks/one/0001.layer?hash=$(printf '%064d' 0)")
[ "$code" = 404 ] || fail "no staged copy got HTTP $code, not 404"
code=$(curl -s -o /dev/null -w '%{http_code}' \
  "$url/vdisks/one/0001.layer?hash=$(printf '%064d' 0)")
[ "$code" = 401 ] || fail "no token got HTTP $code, not 401"

# ---- a chain: srv1 -> srv2 -> srv3 -> srv4 ----
layer=vdisks/one/0001.layer
for s in srv2 srv3 srv4; do start $s; done
for s in srv2 srv3 srv4; do finish $s; done
repl_identical srv1 srv2 srv3 srv4
repl_status_identical
h2=$(how srv2 $layer) h3=$(how srv3 $layer) h4=$(how srv4 $layer)
echo "the layer came: srv2 <- $h2, srv3 <- $h3, srv4 <- $h4"
[ "$h2" = "download srv1" ] || fail "srv2 did not take the layer from srv1: $h2"
[ "$h3" = "relay srv2" ] || fail "srv3 did not take the layer from srv2's copy: $h3"
[ "$h4" = "relay srv3" ] || fail "srv4 did not take the layer from srv3's copy: $h4"
for s in srv2 srv3 srv4; do
  ls "$TESTDIR/$s/.replicator/staging" | grep -q . &&
    fail "$s left staged files: $(ls "$TESTDIR/$s/.replicator/staging")"
done

# ---- the relay killed mid-transfer ----
repl_import two 96M
layer=vdisks/two/0001.layer
h=$(hash_of $layer)
start srv2
start srv3
wait_until 60 arrived_at_least srv3 "$h" $((8 << 20))
kill -9 "${PID[srv2]}"
wait "${PID[srv2]}" 2>/dev/null || true
echo "srv2 killed with $(($(arrived srv2 "$h") >> 20)) MiB, srv3 had $(($(arrived srv3 "$h") >> 20)) MiB"
finish srv3
h3=$(how srv3 $layer)
echo "the layer came: srv3 <- $h3 (its relay srv2 was killed)"
[ "$h3" = "download srv1" ] || fail "srv3 did not complete from srv1: $h3"
grep -q "srv2" "$TESTDIR/srv3.json" || fail "srv3's report does not mention its relay"
repl_no_partial srv2
repl_sync srv2
repl_sync srv4
repl_identical srv1 srv2 srv3 srv4

# ---- a relay serving wrong bytes ----
repl_import three 96M
layer=vdisks/three/0001.layer
h=$(hash_of $layer)
start srv2
wait_until 60 arrived_at_least srv2 "$h" $((8 << 20))
# Damage 4 KiB that has arrived (and is past the header and map).
at=$(/usr/bin/python3 -c "
import struct
d = open('$TESTDIR/srv2/.replicator/staging/$h.got', 'rb').read()
r = [struct.unpack('<QQ', d[i:i + 16]) for i in range(0, len(d) - 15, 16)]
print(max(a for a, b in r if b - a >= 8192) + 4096)")
head -c 4096 /dev/urandom | dd of="$TESTDIR/srv2/.replicator/staging/$h.part" \
  bs=4096 seek=$((at / 4096)) conv=notrunc status=none
start srv3
wait "${PID[srv3]}" && fail "srv3 committed a layer with wrong bytes"
cat "$TESTDIR/srv3.err"
grep -q "content hash" "$TESTDIR/srv3.err" || fail "srv3 did not say why it refused"
[ -e "$TESTDIR/srv3/$layer" ] && fail "the wrong layer landed on srv3"
repl_no_partial srv3
# srv2 checks the hash of the bytes it received, as they arrived: the
# damage done to its disk behind its back is not in them, so srv2 may
# commit.  A replica damaged on disk is what --verify (and the gateway's
# own background hashing) finds: it is then repaired.
wait "${PID[srv2]}" || cat "$TESTDIR/srv2.err"
repl_sync srv2 --verify
repl_sync srv3
repl_sync srv4
repl_identical srv1 srv2 srv3 srv4
repl_status_identical
echo PASS
