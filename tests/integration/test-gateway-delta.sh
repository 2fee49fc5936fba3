#!/bin/bash
# The delta endpoint against rdiff: the signature of a basis goes in,
# the delta comes out, and "rdiff patch" makes exactly the file.
# Identical concurrent requests cost one computation, repeats come from
# the cache; the delta streams while it is computed, and an error after
# the answer has begun ends it without its last chunk; signatures with librsync's small default blocks on a big
# file, garbage and oversized bodies are refused.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires rdiff --version
requires jq --version
make_farm
make_image "$TESTDIR/disk.raw" 48M 0:40
df vdisk import base "$TESTDIR/disk.raw" >/dev/null
make_token
start_gateway g1 --delta-jobs 2
layer=$TESTDIR/farm/store/vdisks/base/0001.layer
url=/v1/stores/store/delta/vdisks/base/0001.layer
hash=$(manifest_hash base 1)

metric () {
  curl -sf "$GW_URL/metrics" | sed -n "s/^$1 //p"
}

# A basis that differs from the layer in a few places.
cp "$layer" "$TESTDIR/basis"
for off in 1000000 9000000 30000000; do
  head -c 5000 /dev/urandom |
    dd of="$TESTDIR/basis" bs=1 seek=$off conv=notrunc status=none
done
rdiff -f signature "$TESTDIR/basis" "$TESTDIR/basis.sig"
gw "$url" --data-binary @"$TESTDIR/basis.sig" >"$TESTDIR/delta"
[ "$(code)" = 200 ] || fail "delta: HTTP $(code): $(head -c 300 "$TESTDIR/delta")"
[ "$(header ETag)" = "\"$hash\"" ] || fail "delta ETag $(header ETag)"
[ "$(header X-Diskfarm-Mtime-Ns)" = "$(stat -c %.9Y "$layer" | tr -d .)" ] ||
  fail "delta mtime header"
rdiff -f patch "$TESTDIR/basis" "$TESTDIR/delta" "$TESTDIR/out"
cmp "$TESTDIR/out" "$layer" || fail "rdiff patch does not give the layer"
[ "$(stat -c %s "$TESTDIR/delta")" -lt 1000000 ] ||
  fail "the delta of a few changes is $(stat -c %s "$TESTDIR/delta") bytes"
[ "$(metric diskfarm_gateway_deltas_computed_total)" = 1 ] || fail "computed"

# The same signature again: from the cache.
gw "$url" --data-binary @"$TESTDIR/basis.sig" >"$TESTDIR/delta2"
cmp "$TESTDIR/delta" "$TESTDIR/delta2" || fail "cached delta differs"
[ "$(metric diskfarm_gateway_deltas_computed_total)" = 1 ] || fail "recomputed"
[ "$(metric diskfarm_gateway_deltas_cached_total)" = 1 ] || fail "not cached"

# Six servers with one new basis at once: one computation.
dd if=/dev/urandom of="$TESTDIR/basis" bs=1M count=1 seek=20 conv=notrunc \
  status=none
rdiff -f signature "$TESTDIR/basis" "$TESTDIR/basis.sig"
pids=()
for i in 1 2 3 4 5 6; do
  curl -sf -H "Authorization: Bearer $TOKEN" --data-binary @"$TESTDIR/basis.sig" \
    -o "$TESTDIR/d$i" "$GW_URL$url" &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || fail "a concurrent delta request failed"
done
[ "$(metric diskfarm_gateway_deltas_computed_total)" = 2 ] ||
  fail "six identical requests: $(metric diskfarm_gateway_deltas_computed_total) computations in all"
for i in 1 2 3 4 5 6; do
  rdiff -f patch "$TESTDIR/basis" "$TESTDIR/d$i" "$TESTDIR/out"
  cmp "$TESTDIR/out" "$layer" || fail "concurrent delta $i is wrong"
done

# Refusals: librsync's 2 KiB blocks on this 48 MiB file, garbage, an
# empty body, a body over the cap, GET.
rdiff signature -b 2048 "$TESTDIR/basis" "$TESTDIR/small.sig"
gw "$url" --data-binary @"$TESTDIR/small.sig" >"$TESTDIR/body"
[ "$(code)" = 422 ] || fail "2 KiB blocks: HTTP $(code)"
grep -q "too small for a basis" "$TESTDIR/body" || fail "$(cat "$TESTDIR/body")"
gw "$url" --data-binary 'not a signature at all' >"$TESTDIR/body"
[ "$(code)" = 422 ] || fail "garbage: HTTP $(code)"
gw "$url" -X POST >/dev/null
[ "$(code)" = 422 ] || fail "empty body: HTTP $(code)"
truncate -s 65M "$TESTDIR/huge"
gw "$url" --data-binary @"$TESTDIR/huge" >"$TESTDIR/body" 2>/dev/null || true
[ "$(code)" = 413 ] || fail "65 MiB signature: HTTP $(code)"
expect_code 405 "$url"
expect_code 404 /v1/stores/store/delta/vdisks/base/vdisk.conf -X POST \
  --data-binary @"$TESTDIR/basis.sig"
expect_code 403 /v1/stores/store/delta/vdisks/base/../x --path-as-is -X POST \
  --data-binary @"$TESTDIR/basis.sig"
[ "$(metric diskfarm_gateway_deltas_computed_total)" = 2 ] || fail "a refusal computed"

# The file changes while its delta streams (a basis with nothing in
# common: 256 MiB to scan, the delta as big): the answer has begun (200,
# chunked) and must fail visibly, never end like a whole delta.
make_image "$TESTDIR/big.raw" 256M 0:256
df vdisk import big "$TESTDIR/big.raw" >/dev/null
rm -f "$TESTDIR/big.raw"
make_image "$TESTDIR/bbasis" 256M 0:256
rdiff -f signature "$TESTDIR/bbasis" "$TESTDIR/bbasis.sig"
rm -f "$TESTDIR/bbasis"
curl -sS -D "$TESTDIR/bheaders" -H "Authorization: Bearer $TOKEN" \
  --data-binary @"$TESTDIR/bbasis.sig" -o "$TESTDIR/bdelta" \
  "$GW_URL/v1/stores/store/delta/vdisks/big/0001.layer" 2>"$TESTDIR/berr" &
cpid=$!
for _ in $(seq 1200); do
  [ "$(stat -c %s "$TESTDIR/bdelta" 2>/dev/null || echo 0)" -ge 1048576 ] && break
  kill -0 $cpid 2>/dev/null || break
  sleep 0.05
done
[ "$(stat -c %s "$TESTDIR/bdelta" 2>/dev/null || echo 0)" -ge 1048576 ] ||
  fail "no delta streamed: $(cat "$TESTDIR/berr")"
touch "$TESTDIR/farm/store/vdisks/big/0001.layer"
if wait $cpid; then
  fail "a delta whose file changed arrived as if whole ($(stat -c %s "$TESTDIR/bdelta") bytes)"
fi
tr -d '\r' <"$TESTDIR/bheaders" | grep -q "^HTTP/1.1 200" ||
  fail "not a 200 answer: $(cat "$TESTDIR/bheaders")"
tr -d '\r' <"$TESTDIR/bheaders" | grep -qi "^transfer-encoding: chunked" ||
  fail "the delta did not stream: $(cat "$TESTDIR/bheaders")"
grep -q "changed while its delta was computed" "$TESTDIR/gateway-g1.log" ||
  fail "the gateway did not say why: $(tail -5 "$TESTDIR/gateway-g1.log")"
stop_gateways
echo PASS
