#!/bin/bash
# proxyDHCP beside a site DHCP server (dnsmasq) on a namespace LAN: PXE
# clients get the iPXE binary for their architecture, fast, without an
# address; the site server still hands out the addresses; plain DHCP
# clients (busybox udhcpc) are left to it; port 4011 answers too; only
# the --interface given is served.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
requires dnsmasq --version
requires busybox udhcpc --help
net_setup
make_boot_farm
df device add pc02 --mac 52:54:00:00:00:02 --vdisk v >/dev/null
start_site_dhcp
start_bootsvc --interface eth0

# BIOS PXE: two offers, the site's with an address, ours with the file.
# PXE firmware sets the broadcast flag (its NIC has no address yet).
probe --mac 52:54:00:00:00:01 --pxe --arch 0 --uuid --broadcast >"$TESTDIR/bios.json"
[ "$(json_get yiaddr "$SITE_IP" <"$TESTDIR/bios.json")" != "" ] ||
  fail "no offer from the site's DHCP server: $(cat "$TESTDIR/bios.json" "$TESTDIR/dnsmasq.log")"
[ "$(json_get yiaddr "$SRV_IP" <"$TESTDIR/bios.json")" = 0.0.0.0 ] ||
  fail "the proxy offer hands out an address"
[ "$(json_get file "$SRV_IP" <"$TESTDIR/bios.json")" = undionly.kpxe ] ||
  fail "BIOS client not sent undionly.kpxe: $(cat "$TESTDIR/bios.json")"
[ "$(json_get siaddr "$SRV_IP" <"$TESTDIR/bios.json")" = "$SRV_IP" ] || fail "siaddr"
[ "$(json_get options.60 "$SRV_IP" <"$TESTDIR/bios.json")" = PXEClient ] ||
  fail "no PXEClient vendor class in the proxy offer"
[ "$(json_get options.54 "$SRV_IP" <"$TESTDIR/bios.json")" = "$SRV_IP" ] || fail "server id"
[ "$(json_get options.43 "$SRV_IP" <"$TESTDIR/bios.json")" = 0601080a0400505845ff ] ||
  fail "PXE discovery control missing"
[ "$(json_get options.97 "$SRV_IP" <"$TESTDIR/bios.json")" = 00000102030405060708090a0b0c0d0e0f ] ||
  fail "client UUID not echoed"
[ "$(json_get broadcast "$SRV_IP" <"$TESTDIR/bios.json")" = True ] || fail "not broadcast"
ms=$(json_get ms "$SRV_IP" <"$TESTDIR/bios.json")
/usr/bin/python3 -c "import sys; sys.exit(float('$ms') >= 300)" ||
  fail "the proxy offer took ${ms} ms"

# UEFI x64 (architectures 7 and 9): snponly.efi, no option 43.
for arch in 7 9; do
  probe --mac 52:54:00:00:00:02 --pxe --arch $arch >"$TESTDIR/efi.json"
  [ "$(json_get file "$SRV_IP" <"$TESTDIR/efi.json")" = snponly.efi ] ||
    fail "UEFI arch $arch not sent snponly.efi: $(cat "$TESTDIR/efi.json")"
  [ "$(json_get options.43 "$SRV_IP" <"$TESTDIR/efi.json")" = "" ] ||
    fail "UEFI offer carries option 43"
done

# ARM64 UEFI has no binary here: no answer from us.
probe --mac 52:54:00:00:00:02 --pxe --arch 11 >"$TESTDIR/arm.json"
[ "$(json_get file "$SRV_IP" <"$TESTDIR/arm.json")" = "" ] ||
  fail "ARM64 client got a boot file"

# Port 4011: a client with its address asks the proxy directly.
net_client_address "$NET_PREFIX.60"
probe --mac 52:54:00:00:00:02 --pxe --arch 7 --type request \
  --ciaddr "$NET_PREFIX.60" --server "$SRV_IP" --port 4011 >"$TESTDIR/4011.json"
[ "$(json_get from <"$TESTDIR/4011.json")" = "$SRV_IP:4011" ] ||
  fail "no answer from port 4011: $(cat "$TESTDIR/4011.json")"
[ "$(json_get type <"$TESTDIR/4011.json")" = ACK ] || fail "4011 answer is not an ACK"
[ "$(json_get file <"$TESTDIR/4011.json")" = snponly.efi ] || fail "4011 boot file"
in_cli ip addr flush dev eth0

# A plain DHCP client: the site's address, and nothing from the proxy.
ignored=$(status_field dhcp.ignored)
cat >"$TESTDIR/udhcpc.sh" <<EOF
#!/bin/sh
[ "\$1" = bound ] && echo "\$ip \$serverid" >"$TESTDIR/udhcpc.out"
exit 0
EOF
chmod +x "$TESTDIR/udhcpc.sh"
in_cli busybox udhcpc -i eth0 -f -q -n -t 5 -T 1 -s "$TESTDIR/udhcpc.sh" \
  >"$TESTDIR/udhcpc.log" 2>&1 || fail "udhcpc got no lease: $(cat "$TESTDIR/udhcpc.log")"
read -r ip server <"$TESTDIR/udhcpc.out"
case $ip in $NET_PREFIX.1[0-5][0-9]) ;; *) fail "udhcpc address $ip" ;; esac
[ "$server" = "$SITE_IP" ] || fail "udhcpc lease from $server"
[ "$(status_field dhcp.ignored)" -gt "$ignored" ] || fail "udhcpc not ignored"
# Bound to eth0: a request on another interface (lo) never arrives.
received=$(status_field dhcp.received)
in_srv /usr/bin/python3 "$DHCP_PROBE" --iface lo --server 127.0.0.1 --pxe \
  --arch 0 --wait 0.3 >"$TESTDIR/lo.json"
[ -s "$TESTDIR/lo.json" ] && fail "answered on lo: $(cat "$TESTDIR/lo.json")"
[ "$(status_field dhcp.received)" = "$received" ] || fail "received on lo"
grep -q "proxy offer to 52:54:00:00:00:01 (pc01) on eth0: undionly.kpxe" \
  "$TESTDIR/bootsvc.log" || fail "offer not logged: $(cat "$TESTDIR/bootsvc.log")"
echo PASS
