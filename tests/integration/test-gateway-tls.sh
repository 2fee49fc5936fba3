#!/bin/bash
# HTTPS: a farm CA and a server certificate made with openssl; curl
# verifies the gateway against the CA, refuses it without, and plain
# HTTP gets nowhere.  Files and ranges come right over TLS (no sendfile
# there).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires openssl version
make_farm
make_image "$TESTDIR/disk.raw" 8M 0:8
df vdisk import base "$TESTDIR/disk.raw" >/dev/null
make_token
pki=$TESTDIR/pki
mkdir "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=diskfarm test CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=srv1" \
  -keyout "$pki/srv1.key" -out "$pki/srv1.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' >"$pki/ext"
openssl x509 -req -in "$pki/srv1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
  -CAcreateserial -days 2 -extfile "$pki/ext" -out "$pki/srv1.pem" 2>/dev/null
cp "$pki/ca.pem" "$TESTDIR/farm/ca.pem"
gateway_setting ca-file ca.pem

if "$GATEWAY" --farm "$TESTDIR/farm" --listen 127.0.0.1:0 \
     --tls-cert "$pki/srv1.pem" >"$TESTDIR/bad.log" 2>&1; then
  fail "started with a certificate and no key"
fi
grep -q -- "--tls-cert and --tls-key go together" "$TESTDIR/bad.log" ||
  fail "$(cat "$TESTDIR/bad.log")"
start_gateway tls --tls-cert "$pki/srv1.pem" --tls-key "$pki/srv1.key"
case $GW_URL in https://*) ;; *) fail "not HTTPS: $GW_URL" ;; esac
grep -q "over HTTPS on 127.0.0.1:" "$TESTDIR/gateway-tls.log" || fail "log"

curl -sf --cacert "$pki/ca.pem" "$GW_URL/v1/status" >"$TESTDIR/status" ||
  fail "curl --cacert failed"
grep -q '"server": "srv1"' "$TESTDIR/status" || fail "status over HTTPS"
rc=0
curl -s -o /dev/null "$GW_URL/v1/status" || rc=$?
[ "$rc" = 60 ] || fail "an unverified certificate was accepted (curl $rc)"
rc=0
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$GW_PORT/v1/status" || rc=$?
[ "$rc" != 0 ] || fail "plain HTTP answered on the HTTPS port"

layer=$TESTDIR/farm/store/vdisks/base/0001.layer
gw /v1/stores/store/files/vdisks/base/0001.layer --cacert "$pki/ca.pem" \
  >"$TESTDIR/got"
[ "$(code)" = 200 ] || fail "file over HTTPS: HTTP $(code)"
cmp "$TESTDIR/got" "$layer" || fail "file over HTTPS differs"
gw /v1/stores/store/files/vdisks/base/0001.layer --cacert "$pki/ca.pem" \
  -r 100-199,5000-5099 >"$TESTDIR/got"
[ "$(code)" = 206 ] || fail "ranges over HTTPS: HTTP $(code)"
[ "$(header Content-Type | cut -d';' -f1)" = multipart/byteranges ] ||
  fail "multipart over HTTPS"
# diskfarm status speaks HTTPS when the farm names a CA, and verifies.
df server set srv1 --gateway "127.0.0.1:$GW_PORT" >/dev/null
wait_for 10 "diskfarm status over HTTPS" df status
df status --json | jq -e '.servers[0].status.server == "srv1"' >/dev/null ||
  fail "status over HTTPS: $(df status --json)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=another CA" \
  -keyout "$pki/other.key" -out "$TESTDIR/farm/ca.pem" 2>/dev/null
rc=0
df status >"$TESTDIR/table" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "status trusted a gateway the farm's CA did not sign: $rc"
grep -q "^srv1  *down .*certificate" "$TESTDIR/table" || fail "$(cat "$TESTDIR/table")"

stop_gateways
echo PASS
