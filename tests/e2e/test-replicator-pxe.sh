#!/bin/bash
# A diskless guest PXE-boots from the second server of a farm whose
# store there was filled only by diskfarm-replicator: the vDisk (layer,
# vdisk.conf, kernel and initrd) is imported on srv1, replicated to srv2
# over srv1's gateway, srv1 goes away, and srv2 alone (its boot service,
# nbdkit with the plugin) boots the guest and serves its disk.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"

GATEWAY="$DISKFARM_BUILD/gateway/diskfarm-gateway"
REPLICATOR="$DISKFARM_BUILD/replicator/diskfarm-replicator"
e2e_requires nbdkit curl
[ -f "$PLUGIN" ] || fail "$PLUGIN is not built"
[ -x "$GATEWAY" ] && [ -x "$REPLICATOR" ] || fail "gateway or replicator not built"
e2e_setup
e2e_start_dnsmasq
# srv2 is the host address (the boot service's), srv1 a second one.
SRV1_IP=$E2E_SUBNET.3
SRV2_IP=$E2E_HOST_IP
e2e_add_host_ip "$SRV1_IP"

token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker=marker-$token
df init --server-name srv1 --address "$SRV1_IP" >/dev/null
df server add srv2 --address "$SRV2_IP" >/dev/null
df server set srv1 --store-paths "store:$TESTDIR/srv1" >/dev/null
df server set srv2 --store-paths "store:$TESTDIR/srv2" >/dev/null
mkdir -p "$TESTDIR/srv1" "$TESTDIR/srv2"
printf 'e2e-replication-token-%s\n' "$token" >"$TESTDIR/farm/gateway.token"
chmod 600 "$TESTDIR/farm/gateway.token"
printf '\n[gateway]\ntoken-file = gateway.token\n' >>"$TESTDIR/farm/farm.conf"
sed -i '/^\[farm\]$/a config-server = srv1' "$TESTDIR/farm/farm.conf"
e2e_make_disk "$TESTDIR/disk.img" 64M "$marker"
df --server srv1 vdisk import v "$TESTDIR/disk.img" >/dev/null
df --server srv1 vdisk boot v --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cmdline "console=ttyS0 panic=-1 quiet e2e.token=$token" >/dev/null
df --server srv1 device add pc1 --mac 52:54:00:00:00:01 --vdisk v >/dev/null

# srv1's gateway; srv2 replicates from it.
# (ip netns exec itself, not the e2e_ns function: $! is then the gateway)
ip netns exec "$E2E_NS" "$GATEWAY" --farm "$TESTDIR/farm" --server srv1 \
  --listen "$SRV1_IP:10811" >"$TESTDIR/gw-srv1.log" 2>&1 &
gw=$!
for _ in $(seq 100); do
  e2e_ns curl -sf -o /dev/null "http://$SRV1_IP:10811/v1/status" && break
  kill -0 $gw 2>/dev/null || { cat "$TESTDIR/gw-srv1.log" >&2; fail "gateway"; }
  sleep 0.1
done
[ ! -e "$TESTDIR/srv2/vdisks" ] || fail "srv2's store is not empty"
e2e_ns "$REPLICATOR" sync --farm "$TESTDIR/farm" --server srv2 ||
  fail "replication to srv2 failed"
for f in vdisk.conf 0001.layer boot/vmlinuz boot/initrd.img; do
  cmp "$TESTDIR/srv1/vdisks/v/$f" "$TESTDIR/srv2/vdisks/v/$f" ||
    fail "srv2's $f differs"
done

# srv1 goes away: its gateway, and it serves nothing.
kill $gw
wait $gw 2>/dev/null || true
e2e_ns curl -s -o /dev/null "http://$SRV1_IP:10811/v1/status" &&
  fail "srv1's gateway still answers"
e2e_start_server s2 10809 "$PLUGIN" farm="$TESTDIR/farm" server=srv2
e2e_start_bootsvc srv2 -D boot
script=$(e2e_ns curl -sf "http://$SRV2_IP:10810/boot/52-54-00-00-00-01.ipxe") ||
  fail "no script for pc1"
case $script in
  *"diskfarm.servers=$SRV2_IP:10809 "*) ;;
  *) fail "pc1's servers are not srv2 alone: $script" ;;
esac

E2E_MAC=52:54:00:00:00:01 e2e_boot_pxe pc1 bios
e2e_wait_result pc1
[ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$token" ] ||
  fail "unexpected result: $E2E_RESULT"
console=$(tr -d '\r' <"$TESTDIR/pc1.console")
case $console in
  *"http://$SRV2_IP:10810/boot/52-54-00-00-00-01.ipxe... ok"*) ;;
  *) fail "pc1 did not get its script from srv2" ;;
esac
grep -q "dev/pc1@" "$TESTDIR/s2.log" || fail "srv2's nbdkit did not serve pc1"
echo PASS
