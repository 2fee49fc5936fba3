#!/bin/bash
# Hostile DHCP input: truncated packets, bad option lengths, no end
# option, bad overloads, oversized and random datagrams, on ports 67 and
# 4011.  The service never crashes, counts each, logs a few, and keeps
# answering real clients.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
net_setup
make_boot_farm
start_bootsvc --interface eth0
net_client_address "$NET_PREFIX.64"
corpus="$DISKFARM_SRCDIR/tests/fuzz/corpus/dhcp"

sent=0
send () {   # send FILE PORT
  probe --raw-file "$1" --server "$SRV_IP" --port "$2" --wait 0
  sent=$((sent + 1))
}
# The first ten are logged (then a few a minute): these three first.
for f in bad-truncated bad-option-length bad-no-end bad-cookie bad-hlen \
         bad-overload; do
  send "$corpus/$f.bin" 67
  send "$corpus/$f.bin" 4011
done
head -c 0 /dev/zero >"$TESTDIR/empty.bin"
head -c 6000 /dev/urandom >"$TESTDIR/huge.bin"
send "$TESTDIR/empty.bin" 67
send "$TESTDIR/huge.bin" 67
for i in $(seq 20); do
  head -c $((RANDOM % 700)) /dev/urandom >"$TESTDIR/random.bin"
  # A random packet may by chance be a valid one: count only those the
  # parser must refuse (no magic cookie at 236).
  cookie=$(tail -c +237 "$TESTDIR/random.bin" | head -c 4 | od -An -tx1 | tr -d ' ')
  [ "$cookie" = 63825363 ] && continue
  send "$TESTDIR/random.bin" 4011
done
# The datagrams were sent without waiting: they are counted a moment later.
malformed_is () {
  local n
  n=$(status_field dhcp.malformed)
  [ "$n" = "$1" ] || { echo "$n counted"; return 1; }
}
wait_for 10 "$sent malformed packets counted" malformed_is "$sent"
kill -0 "$BOOTSVC_PID" || fail "the service died: $(tail "$TESTDIR/bootsvc.log")"
grep -q "malformed packet from $NET_PREFIX.64:68 on eth0: truncated packet (200 bytes" \
  "$TESTDIR/bootsvc.log" || fail "truncated packet not logged"
grep -q "malformed packet .*: option 53 (200 bytes) runs past the end of the options field" \
  "$TESTDIR/bootsvc.log" || fail "bad option length not logged"
grep -q "malformed packet .*: the options field has no end option" \
  "$TESTDIR/bootsvc.log" || fail "missing end not logged"
# Logs are rate-limited: at most 10 a minute however many arrive.
[ "$(grep -c "malformed packet from" "$TESTDIR/bootsvc.log")" -le 10 ] ||
  fail "malformed packets flood the log"

probe --mac 52:54:00:00:00:01 --pxe --arch 0 >"$TESTDIR/ok.json"
[ "$(json_get file <"$TESTDIR/ok.json")" = undionly.kpxe ] ||
  fail "no answer after the hostile packets"
echo PASS
