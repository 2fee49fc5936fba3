#!/bin/bash
# Soak: 200 concurrent HTTP clients for 60 s (curl --parallel) mixing
# /v1/status, /metrics and Range downloads of a layer: not one error,
# the bytes of the ranges right (checked every tenth round), and the
# gateway's memory (RSS) after the warm-up (the first third) grows by at
# most 10%.  nbdkit beside it publishes live sessions, so that every
# status and metrics answer reads them.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires nbdcopy --version
requires jq --version
SOAK_SECONDS=${SOAK_SECONDS:-60}
make_farm
make_image "$TESTDIR/disk.raw" 64M 0:64
df vdisk import base "$TESTDIR/disk.raw" >/dev/null
make_token
start_gateway soak
df device add pc1 --mac 52:54:00:00:00:01 --vdisk base >/dev/null
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base >/dev/null
start_nbdkit session-linger=3600
nbdcopy "$(nbd_uri dev/pc1@soak)" null:
nbdcopy "$(nbd_uri dev/pc2@soak)" null:
wait_for 10 "the sessions" sh -c "curl -sf $GW_URL/v1/status | jq -e '.lingering == 2'"
layer=$TESTDIR/farm/store/vdisks/base/0001.layer
size=$(stat -c %s "$layer")
mkdir "$TESTDIR/pieces"

# One round: 200 clients at once, each status, metrics or a range
# (kept in pieces/ when $1 is "keep").
make_round () {
  local i kind off out
  for i in $(seq 0 199); do
    kind=$((i % 4))
    echo "next"
    case $kind in
    0) echo "url = \"$GW_URL/v1/status\""
       echo "output = \"/dev/null\"" ;;
    1) echo "url = \"$GW_URL/metrics\""
       echo "output = \"/dev/null\"" ;;
    *) off=$(( (RANDOM * 32768 + RANDOM) % (size - 1048576) ))
       echo "url = \"$GW_URL/v1/stores/store/files/vdisks/base/0001.layer\""
       echo "header = \"Authorization: Bearer $TOKEN\""
       echo "range = \"$off-$((off + 1048575))\""
       out=/dev/null
       [ "$1" = keep ] && out=$TESTDIR/pieces/$off
       echo "output = \"$out\"" ;;
    esac
    echo "silent"
    echo "write-out = \"%{http_code} %{size_download} %{url}\\n\""
  done | tail -n +2
}

rss () {
  awk '/^VmRSS:/ { print $2 }' /proc/"$GW_PID"/status
}

round () {
  make_round "$([ $((rounds % 10)) = 0 ] && echo keep)" >"$TESTDIR/round.cfg"
  curl -Z --parallel-max 200 --parallel-immediate -K "$TESTDIR/round.cfg" \
    >"$TESTDIR/round.out" 2>/dev/null || true
  # Every transfer answered 200 (206 for ranges), whole.
  awk '!(($1 == 200) || ($1 == 206 && $2 == 1048576)) { bad++; print }
       END { exit bad > 0 }' "$TESTDIR/round.out" >"$TESTDIR/bad" ||
    fail "errors in round $rounds: $(head -5 "$TESTDIR/bad")"
  [ "$(wc -l <"$TESTDIR/round.out")" = 200 ] || fail "round $rounds: lost transfers"
  # The bytes of a few ranges.
  for f in $(ls "$TESTDIR/pieces" | head -5); do
    cmp "$TESTDIR/pieces/$f" <(tail -c +$((f + 1)) "$layer" | head -c 1048576) ||
      fail "range at $f differs"
  done
  rm -f "$TESTDIR/pieces"/*
  rounds=$((rounds + 1))
  transfers=$((transfers + 200))
}

rounds=0 transfers=0
start=$(date +%s)
warm=
while [ $(($(date +%s) - start)) -lt "$SOAK_SECONDS" ]; do
  round
  if [ -z "$warm" ] && [ $(($(date +%s) - start)) -ge $((SOAK_SECONDS / 3)) ]; then
    warm=$(rss)
  fi
done
end=$(rss)
echo "$rounds rounds, $transfers transfers, RSS after warm-up ${warm} kB, at the end ${end} kB"
[ -n "$warm" ] || fail "no warm-up measurement"
[ $((end * 100)) -le $((warm * 110)) ] ||
  fail "RSS grew from $warm kB to $end kB"
expect_code 200 /v1/sessions
[ "$(jq '[.sessions[].bytes_read] | add' "$TESTDIR/body")" = $((128 << 20)) ] ||
  fail "sessions: $(cat "$TESTDIR/body")"
grep -q "error" "$TESTDIR/gateway-soak.log" && fail "errors logged: $(grep error "$TESTDIR/gateway-soak.log" | head -3)"
stop_gateways
echo PASS
