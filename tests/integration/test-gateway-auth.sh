#!/bin/bash
# The gateway's bearer token: refused without it and with a wrong one,
# /metrics and /v1/status open unless [gateway] public = none, nothing
# else at all without a token file; a token file others may read stops
# the start; a new token and public setting apply without a restart.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires jq --version
make_vdisk_farm ram 16M

status_of () {      # status_of PATH [CURL ARGS...]
  local path=$1
  shift
  curl -s -o "$TESTDIR/body" -w '%{http_code}' "$@" "$GW_URL$path"
}

# No token file: only the public endpoints answer.
start_gateway nofile
grep -q "sets no \[gateway\] token-file" "$TESTDIR/gateway-nofile.log" ||
  fail "no warning about the missing token file"
[ "$(status_of /v1/status)" = 200 ] || fail "status without a token file"
[ "$(status_of /v1/vdisks -H 'Authorization: Bearer anything-at-all-here')" = 403 ] ||
  fail "a token accepted without a token file"
[ "$(jq -r .error "$TESTDIR/body")" = no-token ] || fail "$(cat "$TESTDIR/body")"
stop_gateway "$GW_PID"

# A token file others may read: no start.
make_token
chmod 644 "$TESTDIR/farm/gateway.token"
if "$GATEWAY" --farm "$TESTDIR/farm" --listen 127.0.0.1:0 \
     --stats-dir "$TESTDIR/stats" >"$TESTDIR/bad.log" 2>&1; then
  fail "started with a token file others may read"
fi
grep -q "token file .*gateway.token may be read by others (mode 0644)" \
  "$TESTDIR/bad.log" || fail "$(cat "$TESTDIR/bad.log")"
chmod 640 "$TESTDIR/farm/gateway.token"

start_gateway g1
[ "$(status_of /v1/status)" = 200 ] || fail "status is public by default"
[ "$(status_of /metrics)" = 200 ] || fail "metrics are public by default"
for p in /v1/vdisks /v1/devices /v1/sessions /v1/stores/store/manifest \
         /v1/farm/manifest /v1/nothing; do
  [ "$(status_of $p)" = 401 ] || fail "$p without a token: $(cat "$TESTDIR/body")"
  [ "$(jq -r .error "$TESTDIR/body")" = unauthorized ] || fail "$p: 401 body"
  [ "$(status_of $p -H 'Authorization: Bearer wrong-token-0123456789')" = 401 ] ||
    fail "$p with a wrong token"
  [ "$(status_of $p -H "Authorization: Basic $TOKEN")" = 401 ] ||
    fail "$p with the token as Basic"
done
curl -s -D - -o /dev/null "$GW_URL/v1/vdisks" | tr -d '\r' |
  grep -q '^WWW-Authenticate: Bearer realm="diskfarm"$' || fail "no WWW-Authenticate"
[ "$(status_of /v1/vdisks -H "Authorization: Bearer $TOKEN")" = 200 ] ||
  fail "the right token refused"
[ "$(status_of /v1/nothing -H "Authorization: Bearer $TOKEN")" = 404 ] ||
  fail "unknown path with the token"
grep -q "refused GET /v1/vdisks from 127.0.0.1: wrong token" \
  "$TESTDIR/gateway-g1.log" || fail "wrong token not logged"
grep -q "$TOKEN" "$TESTDIR/gateway-g1.log" && fail "the token is in the log"

# public = none, and a new token: both without a restart.
old=$TOKEN
gateway_setting public none
make_token
wait_for 10 "public = none" sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $GW_URL/v1/status)\" = 401 ]"
[ "$(status_of /metrics)" = 401 ] || fail "metrics still public"
[ "$(status_of /v1/status -H "Authorization: Bearer $TOKEN")" = 200 ] ||
  fail "the new token refused"
[ "$(status_of /v1/status -H "Authorization: Bearer $old")" = 401 ] ||
  fail "the old token still works"
stop_gateways
echo PASS
