#!/bin/bash
# /metrics of the gateway and of the boot service pass promtool's
# checks, and their counters count: HTTP answers by status code, the
# gateway's refusals, the boot service's scripts, DHCP packets and TFTP
# transfers.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires curl --version
requires promtool --version
requires_bootsvc_net
net_setup
make_boot_farm
make_token
start_gateway g1

check_metrics () {     # check_metrics FILE: promtool has nothing to say
  promtool check metrics <"$1" >"$TESTDIR/promtool.out" 2>&1 ||
    fail "promtool: $(cat "$TESTDIR/promtool.out")"
  [ ! -s "$TESTDIR/promtool.out" ] || fail "promtool: $(cat "$TESTDIR/promtool.out")"
}

expect_code 200 /v1/vdisks
expect_code 404 /v1/nothing
expect_code 403 /v1/stores/store/files/x/../y --path-as-is
curl -sf "$GW_URL/metrics" >"$TESTDIR/m1"
check_metrics "$TESTDIR/m1"
grep -q '^diskfarm_gateway_http_requests_total{code="200"} 1$' "$TESTDIR/m1" ||
  fail "200s: $(grep http_requests "$TESTDIR/m1")"
grep -q '^diskfarm_gateway_http_requests_total{code="404"} 1$' "$TESTDIR/m1" ||
  fail "404s"
grep -q '^diskfarm_gateway_refused_total 1$' "$TESTDIR/m1" || fail "refusals"
for s in booting active lingering; do
  grep -q "^diskfarm_sessions{state=\"$s\"} 0$" "$TESTDIR/m1" || fail "sessions $s"
done
grep -q '^diskfarm_load 0$' "$TESTDIR/m1" || fail "load"
grep -q '^diskfarm_store_free_bytes{store="store"} [1-9]' "$TESTDIR/m1" ||
  fail "store space"
grep -q "^diskfarm_gateway_info{version=\"[0-9.]*\",server=\"srv1\"} 1$" \
  "$TESTDIR/m1" || fail "info"

# The boot service serves its own counters.
start_bootsvc --dhcp-mode off
in_srv curl -sf -o /dev/null "tftp://$SRV_IP/undionly.kpxe" || fail "tftp"
in_srv curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/boot/52-54-00-00-00-01.ipxe"
in_srv curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/boot/not-a-mac.ipxe"
in_srv curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$TESTDIR/m2"
check_metrics "$TESTDIR/m2"
grep -q '^diskfarm_bootsvc_scripts_total 1$' "$TESTDIR/m2" || fail "scripts"
grep -q '^diskfarm_bootsvc_http_requests_total{code="404"} 1$' "$TESTDIR/m2" ||
  fail "bootsvc 404s: $(grep http_requests "$TESTDIR/m2")"
grep -q '^diskfarm_bootsvc_dhcp_packets_total{kind="received"} 0$' "$TESTDIR/m2" ||
  fail "dhcp counters"
grep -q '^diskfarm_bootsvc_tftp_transfers_total{outcome="completed"} 1$' \
  "$TESTDIR/m2" || fail "tftp counters: $(grep tftp "$TESTDIR/m2")"
stop_gateways
echo PASS
