#!/bin/bash
# The boot service lists a server for a device only if that server's
# replica of the device's version is identical: not before the
# replicator brought it there, not while a new version is pending there,
# not when its gateway stops answering.  It learns this from the other
# servers' gateways in the background, where farm.conf says they are.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
BOOTSVC="$DISKFARM_BUILD/bootsvc/diskfarm-bootsvc"
[ -x "$BOOTSVC" ] || fail "$BOOTSVC is not built"
repl_farm 2
repl_import base 16M
head -c 100000 /dev/urandom >"$TESTDIR/vmlinuz"
head -c 100000 /dev/urandom >"$TESTDIR/initrd.img"
df --server srv1 vdisk boot base --kernel "$TESTDIR/vmlinuz" \
  --initrd "$TESTDIR/initrd.img" >/dev/null
df --server srv1 device add pc1 --mac 52:54:00:00:00:01 --vdisk base >/dev/null
repl_start_gateways

# The boot service on a free port (another, if one takes it meanwhile).
for _ in 1 2 3 4 5; do
  port=$(free_tcp_port)
  "$BOOTSVC" --farm "$TESTDIR/farm" --server srv1 --dhcp-mode off --tftp-port 0 \
    --http-port "$port" --listen 127.0.0.1 -D boot >"$TESTDIR/bootsvc.log" 2>&1 &
  BPID=$!
  cleanup_fn "kill $BPID 2>/dev/null; wait $BPID 2>/dev/null"
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/status" && break 2
    kill -0 $BPID 2>/dev/null || break
    sleep 0.05
  done
  grep -q "Address already in use" "$TESTDIR/bootsvc.log" || break
done
curl -s -o /dev/null "http://127.0.0.1:$port/v1/status" ||
  { cat "$TESTDIR/bootsvc.log" >&2; fail "the boot service did not start"; }

servers () {    # the servers of pc1's boot script
  curl -sf "http://127.0.0.1:$port/boot/52-54-00-00-00-01.ipxe" |
    grep -o 'diskfarm.servers=[^ ]*' | head -1 | cut -d= -f2
}
# lists SERVERS: within 20 s, pc1's script names exactly these.
lists () {
  local i got
  for i in $(seq 100); do
    got=$(servers) && [ "$got" = "$1" ] && return 0
    sleep 0.2
  done
  cat "$TESTDIR/bootsvc.log" >&2
  fail "pc1's servers are \"$got\", not \"$1\""
}

# srv2 has nothing yet: only srv1.
lists 127.0.0.1:10809
# Until the boot service has heard from srv2's gateway, srv2 is left out
# as "not known"; then as "missing".
missing_logged () {
  servers >/dev/null
  grep -q "leaving out srv2, its replica of base@1 is missing" "$TESTDIR/bootsvc.log"
}
wait_for 20 "the boot service to say srv2's replica is missing" missing_logged
repl_sync srv2
lists 127.0.0.1:10809,127.0.0.2:10809

# A new version in production on srv1: pending on srv2 until replicated.
df --server srv1 version new base >/dev/null
df --server srv1 version promote base 2 production >/dev/null
lists 127.0.0.1:10809
curl -sf "http://127.0.0.1:$port/boot/52-54-00-00-00-01.ipxe" |
  grep -q 'dev/pc1@' || fail "no device session in the script"
repl_sync srv2
lists 127.0.0.1:10809,127.0.0.2:10809

# srv2's gateway stops answering: srv2 is not known to hold anything.
repl_stop_gateway srv2
lists 127.0.0.1:10809
repl_start_gateway srv2
lists 127.0.0.1:10809,127.0.0.2:10809

# srv2's gateway moves to another port: farm.conf says so, and the boot
# service follows the farm to ask it there.
repl_stop_gateway srv2
lists 127.0.0.1:10809
REPL_PORT[srv2]=$(free_tcp_port)
df server set srv2 --gateway "127.0.0.1:${REPL_PORT[srv2]}" >/dev/null
repl_start_gateway srv2
lists 127.0.0.1:10809,127.0.0.2:10809
echo PASS
