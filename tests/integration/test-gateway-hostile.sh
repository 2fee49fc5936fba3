#!/bin/bash
# Hostile paths at the gateway: ../ in every spelling, encoded NUL and
# control bytes, write caches, hidden files, symbolic links leading out
# of the store (a boot file, a whole vDisk directory): each is refused
# with 403 and a JSON error, and logged.  Unknown paths are 404 and
# wrong methods 405, as JSON errors too.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires curl --version
requires jq --version
make_vdisk_farm ram 16M
store=$TESTDIR/farm/store
mkdir -p "$store/vdisks/base/boot" "$store/caches/pc1" "$TESTDIR/outside/vdisk"
echo secret >"$TESTDIR/outside/secret"
echo cache >"$store/caches/pc1/s1.layer"
echo hidden >"$store/vdisks/base/boot/.hidden"
echo kernel >"$store/vdisks/base/boot/vmlinuz"
ln -s "$TESTDIR/outside/secret" "$store/vdisks/base/boot/evil"
ln -s vmlinuz "$store/vdisks/base/boot/alias"
cp "$store/vdisks/base/vdisk.conf" "$TESTDIR/outside/vdisk/vdisk.conf"
ln -s "$TESTDIR/outside/vdisk" "$store/vdisks/escape"
make_token
start_gateway g1
f=/v1/stores/store/files

n=0
hostile () {
  gw "$1" --path-as-is >"$TESTDIR/body"
  [ "$(code)" = 403 ] || fail "$1: HTTP $(code): $(head -c 200 "$TESTDIR/body")"
  jq -e '.error and .message' "$TESTDIR/body" >/dev/null ||
    fail "$1: not a JSON error: $(head -c 200 "$TESTDIR/body")"
  grep -q secret "$TESTDIR/body" && fail "$1: leaked the file"
  n=$((n + 1))
}
hostile "$f/vdisks/base/../../../outside/secret"
hostile "$f/vdisks/base/%2e%2e/%2E%2E/vdisk.conf"
hostile "$f/vdisks/%2e%2e/base/vdisk.conf"
hostile "$f/vdisks/base/vdisk.conf%00.layer"
hostile "$f/vdisks/base/0001.layer%00"
hostile "$f/vdisks/base%0a/vdisk.conf"
hostile "$f//etc/passwd"
hostile "$f/vdisks//base/vdisk.conf"
hostile "$f/vdisks/base/boot/..%2f..%2fvdisk.conf"
hostile "$f/vdisks/base/boot/evil"
hostile "$f/vdisks/escape/vdisk.conf"
hostile "$f/vdisks/base/boot/.hidden"
hostile "$f/vdisks/base/.lock"
hostile "$f/caches/pc1/s1.layer"
hostile "$f/vdisks/base/boot/sub/x"
hostile "$f/$(printf 'a%.0s' $(seq 300))"
hostile "/v1/stores/..%2f..%2fetc/manifest"
hostile "/v1/farm/files/../farm/gateway.token"
hostile "/v1/farm/files/devices.d/.pc1.conf"
c=$(grep -c "refused GET " "$TESTDIR/gateway-g1.log")
[ "$c" = "$n" ] || fail "$n hostile requests, $c logged"
grep -q 'refused GET .*boot/evil from 127.0.0.1: vdisks/base/boot/evil leads out of' \
  "$TESTDIR/gateway-g1.log" || fail "symbolic link refusal not explained"

# The escaping vDisk is not in the manifest; a link inside the store is
# a file like any other.
gw /v1/stores/store/manifest | jq -e '[.files[].path | select(test("escape|evil|hidden"))] == []' \
  >/dev/null || fail "the manifest lists what it may not"
gw "$f/vdisks/base/boot/alias" >"$TESTDIR/got"
[ "$(code)" = 200 ] && [ "$(cat "$TESTDIR/got")" = kernel ] || fail "link inside the store"

# Unknown paths and wrong methods.
expect_code 404 /v1/nothing
[ "$(jq -r .error "$TESTDIR/body")" = not-found ] || fail "404 body"
expect_code 404 "$f/vdisks/base/0009.layer"
expect_code 404 /v1/stores/store/unknown/x
expect_code 405 /v1/status -X DELETE
[ "$(jq -r .error "$TESTDIR/body")" = method-not-allowed ] || fail "405 body"
[ "$(header Allow)" = GET ] || fail "405 Allow: $(header Allow)"
expect_code 405 /v1/stores/store/manifest -X POST
stop_gateways
echo PASS
