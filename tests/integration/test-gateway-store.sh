#!/bin/bash
# Store endpoints of the gateway with curl: the manifest lists exactly
# what replication carries (vdisk.conf, sealed layers that match their
# manifest, boot files), files come whole or by Range (one or several),
# with ETag = content hash, If-None-Match and If-Range; an unsealed
# layer and a layer that no longer matches its manifest are not served;
# the farm directory's manifest and files leave the token out.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires jq --version
make_vdisk_farm ram 16M
printf 'kernel bytes %.0s' $(seq 3000) >"$TESTDIR/vmlinuz"
head -c 300000 /dev/urandom >"$TESTDIR/initrd.img"
df vdisk boot base --kernel "$TESTDIR/vmlinuz" --initrd "$TESTDIR/initrd.img" \
  >/dev/null
df version new base >/dev/null        # version 2: maintenance, unsealed
make_token
start_gateway g1
store=$TESTDIR/farm/store
layer=$store/vdisks/base/0001.layer
hash=$(manifest_hash base 1)
[ ${#hash} = 64 ] || fail "no hash in the manifest"

# The manifest: sorted, exactly these files.
gw /v1/stores/store/manifest >"$TESTDIR/m.json"
[ "$(code)" = 200 ] || fail "manifest: HTTP $(code)"
[ "$(jq -r '.store + " " + .server' "$TESTDIR/m.json")" = "store srv1" ] ||
  fail "manifest header: $(head -c 200 "$TESTDIR/m.json")"
jq -r '.files[] | .path + " " + .kind' "$TESTDIR/m.json" >"$TESTDIR/paths"
cat >"$TESTDIR/want" <<EOF
vdisks/base/0001.layer layer
vdisks/base/boot/initrd.img boot
vdisks/base/boot/vmlinuz boot
vdisks/base/vdisk.conf manifest
EOF
diff -u "$TESTDIR/want" "$TESTDIR/paths" || fail "manifest files differ"
[ "$(jq -r '.files[0].hash' "$TESTDIR/m.json")" = "$hash" ] ||
  fail "layer hash is not the manifest's content hash"
[ "$(jq -r '.files[0].size' "$TESTDIR/m.json")" = "$(stat -c %s "$layer")" ] ||
  fail "layer size"
[ "$(jq -r '.files[0].version' "$TESTDIR/m.json")" = 1 ] || fail "layer version"
conf_sha=$(sha256sum "$store/vdisks/base/vdisk.conf" | cut -d' ' -f1)
[ "$(jq -r '.files[3].hash' "$TESTDIR/m.json")" = "$conf_sha" ] ||
  fail "vdisk.conf hash is not its SHA-256"
mt=$(jint "$TESTDIR/m.json" 'd["files"][1]["mtime_ns"]')
[ "$mt" = "$(stat -c %.9Y "$store/vdisks/base/boot/initrd.img" | tr -d .)" ] ||
  fail "boot file mtime_ns $mt"

# Whole files, ETag, mtime header.
gw /v1/stores/store/files/vdisks/base/0001.layer >"$TESTDIR/got"
[ "$(code)" = 200 ] || fail "layer: HTTP $(code)"
cmp "$TESTDIR/got" "$layer" || fail "layer content"
[ "$(header ETag)" = "\"$hash\"" ] || fail "ETag $(header ETag)"
[ "$(header X-Diskfarm-Mtime-Ns)" = "$(stat -c %.9Y "$layer" | tr -d .)" ] ||
  fail "X-Diskfarm-Mtime-Ns $(header X-Diskfarm-Mtime-Ns)"
gw /v1/stores/store/files/vdisks/base/boot/initrd.img >"$TESTDIR/got"
cmp "$TESTDIR/got" "$TESTDIR/initrd.img" || fail "initrd content"
[ "$(header ETag)" = "\"$(sha256sum <"$TESTDIR/initrd.img" | cut -d' ' -f1)\"" ] ||
  fail "boot file ETag is not its SHA-256"
gw /v1/stores/store/files/vdisks/base/vdisk.conf >"$TESTDIR/got"
cmp "$TESTDIR/got" "$store/vdisks/base/vdisk.conf" || fail "vdisk.conf content"
gw /v1/stores/store/files/vdisks/base/0001.layer -I >/dev/null
[ "$(code)" = 200 ] && [ "$(header Content-Length)" = "$(stat -c %s "$layer")" ] ||
  fail "HEAD: $(code) $(header Content-Length)"

# Ranges: one, several (multipart/byteranges), none satisfiable.
gw /v1/stores/store/files/vdisks/base/0001.layer -r 4096-8191 >"$TESTDIR/part"
[ "$(code)" = 206 ] || fail "Range: HTTP $(code)"
[ "$(header Content-Range)" = "bytes 4096-8191/$(stat -c %s "$layer")" ] ||
  fail "Content-Range $(header Content-Range)"
cmp "$TESTDIR/part" <(tail -c +4097 "$layer" | head -c 4096) || fail "range content"
gw /v1/stores/store/files/vdisks/base/0001.layer -r 0-99,-50 >"$TESTDIR/multi"
[ "$(code)" = 206 ] || fail "multi-range: HTTP $(code)"
boundary=$(header Content-Type | sed -n 's/^multipart\/byteranges; boundary=//p')
[ -n "$boundary" ] || fail "multi-range Content-Type $(header Content-Type)"
{ printf -- '--%s\r\nContent-Type: application/octet-stream\r\n' "$boundary"
  printf 'Content-Range: bytes 0-99/%s\r\n\r\n' "$(stat -c %s "$layer")"
  head -c 100 "$layer"
  printf -- '\r\n--%s\r\nContent-Type: application/octet-stream\r\n' "$boundary"
  printf 'Content-Range: bytes %s-%s/%s\r\n\r\n' "$(($(stat -c %s "$layer") - 50))" \
    "$(($(stat -c %s "$layer") - 1))" "$(stat -c %s "$layer")"
  tail -c 50 "$layer"
  printf -- '\r\n--%s--\r\n' "$boundary"
} >"$TESTDIR/multi.want"
cmp "$TESTDIR/multi" "$TESTDIR/multi.want" || fail "multipart body"
gw /v1/stores/store/files/vdisks/base/0001.layer -r 999999999- >/dev/null
[ "$(code)" = 416 ] || fail "unsatisfiable range: HTTP $(code)"

# Conditional requests.
gw /v1/stores/store/files/vdisks/base/0001.layer -H "If-None-Match: \"$hash\"" >/dev/null
[ "$(code)" = 304 ] || fail "If-None-Match: HTTP $(code)"
gw /v1/stores/store/files/vdisks/base/0001.layer -r 0-9 -H "If-Range: \"$hash\"" \
  >"$TESTDIR/got"
[ "$(code)" = 206 ] && [ "$(stat -c %s "$TESTDIR/got")" = 10 ] ||
  fail "If-Range current: HTTP $(code)"
gw /v1/stores/store/files/vdisks/base/0001.layer -r 0-9 -H 'If-Range: "stale"' \
  >"$TESTDIR/got"
[ "$(code)" = 200 ] || fail "If-Range stale: HTTP $(code)"
cmp "$TESTDIR/got" "$layer" || fail "If-Range stale: not the whole file"

# The unsealed maintenance layer is never served.
expect_code 403 /v1/stores/store/files/vdisks/base/0002.layer
[ "$(jq -r .error "$TESTDIR/body")" = not-sealed ] || fail "unsealed: $(cat "$TESTDIR/body")"
expect_code 404 /v1/stores/store/files/vdisks/base/0007.layer
expect_code 404 /v1/stores/nostore/manifest

# A layer whose mtime no longer matches its manifest is no replica.
touch -d '2001-01-01' "$layer"
gw /v1/stores/store/manifest | jq -e '[.files[].kind] | index("layer") == null' \
  >/dev/null || fail "a mismatching layer is listed"
expect_code 404 /v1/stores/store/files/vdisks/base/0001.layer
[ "$(jq -r .error "$TESTDIR/body")" = not-available ] || fail "$(cat "$TESTDIR/body")"

# The farm directory: farm.conf and devices.d, never the token.
gw /v1/farm/manifest >"$TESTDIR/f.json"
[ "$(jq -r '[.files[].path] | join(" ")' "$TESTDIR/f.json")" = \
  "devices.d/pc1.conf farm.conf" ] || fail "farm manifest: $(cat "$TESTDIR/f.json")"
[ "$(jq -r '.files[0].kind' "$TESTDIR/f.json")" = farm ] || fail "farm kind"
gw /v1/farm/files/devices.d/pc1.conf >"$TESTDIR/got"
cmp "$TESTDIR/got" "$TESTDIR/farm/devices.d/pc1.conf" || fail "device file"
expect_code 403 /v1/farm/files/gateway.token
grep -q "$TOKEN" "$TESTDIR/body" && fail "the token leaked"
expect_code 403 /v1/farm/files/devices.d/../gateway.token --path-as-is
grep -q 'refused GET /v1/farm/files/gateway.token from 127.0.0.1' \
  "$TESTDIR/gateway-g1.log" || fail "refusal not logged"
stop_gateways
echo PASS
