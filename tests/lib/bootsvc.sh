# diskfarm — helpers for the boot service tests.  Source it after
# tests/functions.sh:
#   . "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"
#
# net_setup builds a private LAN out of network namespaces, removed at
# exit: a bridge in $NS_LAN, and three hosts on it by veth pairs, each
# with eth0: $NS_SRV (the boot service, $SRV_IP), $NS_SITE (the site's
# DHCP server, $SITE_IP) and $NS_CLI (the client, no address unless
# net_client_address gives it one).  in_srv, in_site and in_cli run a
# command in one of them.

BOOTSVC="$DISKFARM_BUILD/bootsvc/diskfarm-bootsvc"
DHCP_PROBE="$DISKFARM_SRCDIR/tests/lib/dhcp-probe.py"
NET_PREFIX=10.213.0
SRV_IP=$NET_PREFIX.2
SITE_IP=$NET_PREFIX.1
HTTP_PORT=10810

requires_bootsvc_net () {
  requires_root
  requires ip -V
  requires /usr/bin/python3 -c 'import socket; socket.SO_BINDTODEVICE'
  [ -x "$BOOTSVC" ] || fail "$BOOTSVC is not built"
}

in_srv () { ip netns exec "$NS_SRV" "$@"; }
in_site () { ip netns exec "$NS_SITE" "$@"; }
in_cli () { ip netns exec "$NS_CLI" "$@"; }

net_setup () {
  local tag="dfb$$" host
  NS_LAN=$tag-lan NS_SRV=$tag-srv NS_SITE=$tag-site NS_CLI=$tag-cli
  for host in "$NS_LAN" "$NS_SRV" "$NS_SITE" "$NS_CLI"; do
    netns_add "$host" || skip "cannot create network namespaces"
  done
  ip -n "$NS_LAN" link add br0 type bridge
  ip -n "$NS_LAN" link set br0 up
  for host in srv site cli; do
    local ns_var="NS_${host^^}"
    ip -n "$NS_LAN" link add "v-$host" type veth peer name eth0 netns "${!ns_var}"
    ip -n "$NS_LAN" link set "v-$host" master br0 up
    ip -n "${!ns_var}" link set eth0 up
  done
  ip -n "$NS_SRV" addr add "$SRV_IP/24" dev eth0
  ip -n "$NS_SITE" addr add "$SITE_IP/24" dev eth0
}

# Gives the client a fixed address (for unicast tests: HTTP, TFTP, 4011).
net_client_address () {
  ip -n "$NS_CLI" addr add "$1/24" dev eth0
}

# A farm in $TESTDIR/farm whose server srv1 is $SRV_IP, with vDisk v
# (kernel and initrd set, a small image) and device pc01 (52:54:00:00:00:01).
make_boot_farm () {
  make_farm --address "$SRV_IP"
  make_image "$TESTDIR/disk.raw" 4M 0:1
  df vdisk import v "$TESTDIR/disk.raw" >/dev/null
  head -c 300000 /dev/urandom >"$TESTDIR/vmlinuz"
  head -c 700000 /dev/urandom >"$TESTDIR/initrd.img"
  df vdisk boot v --kernel "$TESTDIR/vmlinuz" --initrd "$TESTDIR/initrd.img" \
    --cmdline "root=/dev/nbd0p1 ro" >/dev/null
  df device add pc01 --mac 52:54:00:00:00:01 --vdisk v >/dev/null
}

# farm_setting KEY VALUE: sets a [farm] key of the test's farm.conf.
farm_setting () {
  sed -i "/^\[farm\]\$/a $1 = $2" "$TESTDIR/farm/farm.conf"
}

# Runs diskfarm-bootsvc in the server namespace with the test's farm,
# logging to $TESTDIR/bootsvc.log; waits until HTTP answers.  Sets
# BOOTSVC_PID; stop_bootsvc stops it.
start_bootsvc () {
  local deadline=$((SECONDS + 20))
  spawn BOOTSVC_PID ip netns exec "$NS_SRV" \
    "$BOOTSVC" --farm "$TESTDIR/farm" --server srv1 "$@" \
    >"$TESTDIR/bootsvc.log" 2>&1
  until in_srv curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/v1/status"; do
    kill -0 "$BOOTSVC_PID" 2>/dev/null ||
      { cat "$TESTDIR/bootsvc.log"; fail "bootsvc exited"; }
    [ $SECONDS -lt $deadline ] ||
      { cat "$TESTDIR/bootsvc.log"; fail "bootsvc did not start"; }
    sleep 0.1
  done
}

# Stops the boot service and waits until it has exited.
stop_bootsvc () {
  stop_pid "$BOOTSVC_PID"
  ! kill -0 "$BOOTSVC_PID" 2>/dev/null || fail "bootsvc did not stop"
}

# The site's DHCP server: dnsmasq, DHCP only (no DNS), in $NS_SITE.
# Returns once it listens.
start_site_dhcp () {
  requires dnsmasq --version
  spawn SITE_DHCP_PID ip netns exec "$NS_SITE" \
    dnsmasq --no-daemon --port=0 --conf-file=/dev/null \
    --interface=eth0 --bind-interfaces --log-dhcp --no-ping \
    --dhcp-range="$NET_PREFIX.100,$NET_PREFIX.150,255.255.255.0,10m" \
    --dhcp-leasefile="$TESTDIR/dnsmasq.leases" \
    --pid-file="$TESTDIR/dnsmasq.pid" >"$TESTDIR/dnsmasq.log" 2>&1
  wait_for 10 "the site's DHCP server to listen" \
    sh -c "ip netns exec '$NS_SITE' ss -Hlun 'sport = :67' | grep -q ."
}

# dhcp-probe.py in the client namespace.
probe () {
  in_cli /usr/bin/python3 "$DHCP_PROBE" --iface eth0 "$@"
}

# status_field PATH: a number from /v1/status, e.g. status_field dhcp.malformed
status_field () {
  in_srv curl -sf "http://127.0.0.1:$HTTP_PORT/v1/status" |
    /usr/bin/python3 -c "
import json, sys
v = json.load(sys.stdin)
for k in '$1'.split('.'):
    v = v[k]
print(v)"
}

# json_get FIELD [FILTER]: from probe output on stdin, the field of the
# first reply whose "from" starts with FILTER ("" if it has none).
json_get () {
  /usr/bin/python3 -c "
import json, sys
want = sys.argv[2] if len(sys.argv) > 2 else ''
for line in sys.stdin:
    r = json.loads(line)
    if r['from'].startswith(want):
        v = r
        for k in sys.argv[1].split('.'):
            v = v.get(k, '') if isinstance(v, dict) else ''
        print(v)
        break" "$@"
}
