#!/bin/bash
# Full DHCP mode on an isolated network, with busybox udhcpc as the
# client: an address from the range, the lease written to the lease file,
# the same address on renewal and after a restart of the service; PXE
# clients get their boot file with the address; release frees it.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
requires busybox udhcpc --help
net_setup
make_boot_farm
leases="$TESTDIR/leases"
args=(--interface eth0 --dhcp-mode full --range "$NET_PREFIX.100-$NET_PREFIX.102"
      --lease-file "$leases" --lease-time 120 --router "$NET_PREFIX.1"
      --dns "$NET_PREFIX.1,$NET_PREFIX.2")
start_bootsvc "${args[@]}"
climac=$(in_cli cat /sys/class/net/eth0/address)

cat >"$TESTDIR/udhcpc.sh" <<EOF2
#!/bin/sh
echo "\$1 \$ip \$mask \$router \$lease \$serverid \$dns" >>"$TESTDIR/events"
case \$1 in
bound|renew) ip addr flush dev \$interface; ip addr add \$ip/\$mask dev \$interface ;;
deconfig) ip addr flush dev \$interface ;;
esac
exit 0
EOF2
chmod +x "$TESTDIR/udhcpc.sh"
spawn UDHCPC_PID ip netns exec "$NS_CLI" \
  busybox udhcpc -i eth0 -f -t 5 -T 1 -s "$TESTDIR/udhcpc.sh" \
  >"$TESTDIR/udhcpc.log" 2>&1
# wait_event PATTERN [N]: the client's events have N (default 1) lines
# matching PATTERN.
wait_event () {
  local i n
  for i in $(seq 100); do
    n=$(grep -c "$1" "$TESTDIR/events" 2>/dev/null) || n=0
    [ "$n" -ge "${2:-1}" ] && return 0
    sleep 0.1
  done
  fail "no \"$1\" event: $(cat "$TESTDIR/events" "$TESTDIR/udhcpc.log" 2>&1)"
}
wait_event "^bound "
read -r _ ip mask router lease server dns < <(grep "^bound " "$TESTDIR/events")
case $ip in $NET_PREFIX.10[0-2]) ;; *) fail "address $ip outside the range" ;; esac
[ "$mask" = 24 ] || [ "$mask" = 255.255.255.0 ] || fail "mask $mask"
[ "$router" = "$NET_PREFIX.1" ] || fail "router $router"
[ "$dns" = "$NET_PREFIX.1 $NET_PREFIX.2" ] || fail "dns $dns"
[ "$lease" = 120 ] || fail "lease time $lease"
[ "$server" = "$SRV_IP" ] || fail "server id $server"
grep -qx "$climac $ip [0-9]*" "$leases" || fail "lease file: $(cat "$leases" 2>&1)"

# Renewal (unicast from the client's address): the same address.
kill -USR1 "$UDHCPC_PID"
wait_event "^renew "
[ "$(grep '^renew ' "$TESTDIR/events" | tail -1 | cut -d' ' -f2)" = "$ip" ] ||
  fail "renewed to another address: $(cat "$TESTDIR/events")"

# Another client gets another address.
probe --mac 02:00:00:00:00:09 --broadcast >"$TESTDIR/other.json"
other=$(json_get yiaddr <"$TESTDIR/other.json")
[ -n "$other" ] && [ "$other" != "$ip" ] || fail "second client got \"$other\""

# PXE client of the farm: address, boot file, host name.
probe --mac 52:54:00:00:00:01 --pxe --arch 0 --broadcast >"$TESTDIR/pxe.json"
[ "$(json_get file <"$TESTDIR/pxe.json")" = undionly.kpxe ] || fail "PXE boot file"
[ "$(json_get options.12 <"$TESTDIR/pxe.json")" = pc01 ] || fail "host name"
pxe_ip=$(json_get yiaddr <"$TESTDIR/pxe.json")
[ -n "$pxe_ip" ] && [ "$pxe_ip" != 0.0.0.0 ] || fail "PXE client got no address"
# The range is full now: a fourth client gets nothing.
probe --mac 02:00:00:00:00:0a --broadcast >"$TESTDIR/full.json"
[ -s "$TESTDIR/full.json" ] && fail "offer beyond the range: $(cat "$TESTDIR/full.json")"

# A restart keeps the bound lease: a newcomer does not get the address
# (the other two were only offered, so they are free again), and the
# client renews it.
stop_bootsvc
start_bootsvc "${args[@]}"
probe --mac 02:00:00:00:00:0b --broadcast >"$TESTDIR/new.json"
new=$(json_get yiaddr <"$TESTDIR/new.json")
[ -n "$new" ] && [ "$new" != "$ip" ] || fail "after a restart, $ip offered to another client"
kill -USR1 "$UDHCPC_PID"
wait_event "^renew " 2
[ "$(grep '^renew ' "$TESTDIR/events" | tail -1 | cut -d' ' -f2)" = "$ip" ] ||
  fail "after a restart: $(cat "$TESTDIR/events")"
grep -q "dhcp: ack $ip to $climac on eth0" "$TESTDIR/bootsvc.log" ||
  fail "renewal after restart not acknowledged: $(cat "$TESTDIR/bootsvc.log")"

# Release: the lease expires at once in the file.
kill -USR2 "$UDHCPC_PID"
wait_for 10 "the release in the lease file" grep -qx "$climac $ip 0" "$leases"
[ "$(status_field dhcp.leases)" = 0 ] || fail "leases counted after release"
echo PASS
