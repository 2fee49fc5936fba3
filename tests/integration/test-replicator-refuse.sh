#!/bin/bash
# diskfarm-replicator against sources it must not trust blindly: a
# wrong token, a certificate from another CA, a source whose file does
# not match its own manifest, and a corrupt delta (the source gateway's
# cached delta damaged).  After each: a clear error (or, for the delta,
# a warning and a whole download), nothing partial under vdisks/, and
# the next run completes with the stores identical.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires_root                   # the gateway's cached delta, via /proc
requires openssl version
requires python3 -c 1
repl_farm 2
repl_import base 32M

# HTTPS: a CA, the gateway's certificate for 127.0.0.1, another CA.
cd "$TESTDIR"
for ca in ca other; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout $ca.key -out $ca.pem -days 2 -subj "/CN=test $ca" 2>/dev/null
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout gw.key -out gw.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
openssl x509 -req -in gw.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out gw.pem -days 2 -extfile san.ext 2>/dev/null
cd - >/dev/null
sed -i '/^\[gateway\]$/a ca-file = ca.pem' "$TESTDIR/farm/farm.conf"
cp "$TESTDIR/ca.pem" "$TESTDIR/farm/ca.pem"

REPL_SCHEME=https
repl_start_gateway srv1 --tls-cert "$TESTDIR/gw.pem" --tls-key "$TESTDIR/gw.key" \
  --cache-dir "$TESTDIR"
repl_start_gateway srv2 --tls-cert "$TESTDIR/gw.pem" --tls-key "$TESTDIR/gw.key"
# srv2 keeps a farm directory of its own (its token, its CA file).
cp -a "$TESTDIR/farm" "$TESTDIR/farm2"
REPL_FARM_OF[srv2]=$TESTDIR/farm2

# --- a wrong token ---
printf 'not-the-token-0123456789\n' >"$TESTDIR/farm2/gateway.token"
repl_sync_fails "refused the token (HTTP 401" srv2
repl_no_partial srv2
[ ! -e "$TESTDIR/srv2/vdisks/base/vdisk.conf" ] || fail "files came without the token"
printf '%s\n' "$REPL_TOKEN" >"$TESTDIR/farm2/gateway.token"

# --- a certificate of another CA ---
cp "$TESTDIR/other.pem" "$TESTDIR/farm2/ca.pem"
repl_sync_fails "certificate" srv2
[ ! -e "$TESTDIR/srv2/vdisks/base/vdisk.conf" ] || fail "files came over bad TLS"
cp "$TESTDIR/ca.pem" "$TESTDIR/farm2/ca.pem"
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical
grep -q '^ca-file = ca.pem$' "$TESTDIR/farm2/farm.conf" || fail "farm.conf lost ca-file"

# --- a source whose file does not match its own manifest ---
repl_import other 16M
layer=$TESTDIR/srv1/vdisks/other/0001.layer
cp -p --sparse=always "$layer" "$TESTDIR/other.good"
mtime=$(stat -c %.9Y "$layer")
printf '\x5a' | dd of="$layer" bs=1 seek=$(( $(stat -c %s "$layer") - 16 * 1048576 + 123 )) \
  conv=notrunc status=none
touch -d "@$mtime" "$layer"
if out=$("$REPLICATOR" sync --farm "$TESTDIR/farm2" --server srv2 2>&1); then
  fail "a damaged source file was accepted: $out"
fi
case $out in
  *"content hash"*|*"did not offer"*|*"does not match its manifest"*) ;;
  *) fail "no clear error for a damaged source file: $out" ;;
esac
repl_no_partial srv2
[ ! -e "$TESTDIR/srv2/vdisks/other" ] || fail "parts of vdisk other arrived"
[ -z "$(ls "$TESTDIR/srv2/.replicator/staging")" ] || fail "a wrong file stays staged"
cp -p --sparse=always "$TESTDIR/other.good" "$layer"
touch -d "@$mtime" "$layer"
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical

# --- a corrupt delta: the source gateway's cached delta damaged ---
layer=$TESTDIR/srv2/vdisks/base/0001.layer
mtime=$(stat -c %.9Y "$layer")
printf '\x00\x11\x22' | dd of="$layer" bs=1 seek=$(( $(stat -c %s "$layer") - 32 * 1048576 + 77777 )) \
  conv=notrunc status=none
touch -d "@$mtime" "$layer"
cp -p --sparse=always "$layer" "$TESTDIR/base.bad"
repl_sync srv2 --json
[ "$(repl_json "' '.join(m['how'] for m in t['moved'])")" = delta ] ||
  fail "the damage was not repaired by a delta: $(cat "$TESTDIR/sync.out")"
# The same damage again, twice: the same signature, so the gateway's
# cached delta answers, damaged in its cache after its magic: a command
# librsync does not know (corrupt), then a literal longer than the rest
# of the delta (it ends short, though the answer came whole).  Either
# way: a warning, and the whole file instead.
for damage in '\x60' '\x43\x40\x00\x00\x00'; do
  cp -p --sparse=always "$TESTDIR/base.bad" "$layer"
  touch -d "@$mtime" "$layer"
  delta=
  for fd in /proc/${REPL_GW_PID[srv1]}/fd/*; do
    case $(readlink "$fd") in "$TESTDIR"/*deleted*) delta=$fd ;; esac
  done
  [ -n "$delta" ] || fail "no cached delta in the gateway (fds: $(ls -l /proc/${REPL_GW_PID[srv1]}/fd))"
  printf "$damage" | dd of="$delta" bs=1 seek=4 conv=notrunc status=none
  repl_sync srv2 --json
  grep -q "downloading the whole file instead" "$TESTDIR/sync.out" "$TESTDIR/sync.err" ||
    fail "no warning about the corrupt delta: $(cat "$TESTDIR/sync.out" "$TESTDIR/sync.err")"
  [ "$(repl_json "' '.join(m['how'] for m in t['moved'])")" = download ] ||
    fail "not downloaded after the corrupt delta: $(cat "$TESTDIR/sync.out")"
  repl_no_partial srv2
  repl_identical srv1 srv2
  repl_status_identical
done
echo PASS
