#!/bin/bash
# vdisk verify catches a flipped byte in a sealed layer, a damaged header,
# a truncated layer and a broken manifest, naming what is wrong.
. "$DISKFARM_SRCDIR/tests/functions.sh"

make_farm
make_image "$TESTDIR/disk.raw" 16M 0:8
df vdisk import v "$TESTDIR/disk.raw" >/dev/null
df version new v >/dev/null
df version promote v 2 production >/dev/null
df vdisk verify v | grep -q 'all good' || fail "clean vdisk does not verify"
layer="$TESTDIR/farm/store/vdisks/v/0001.layer"
cp -p "$layer" "$TESTDIR/good.layer"

flip () {   # flip FILE OFFSET: invert one byte, keep the mtime
  local b
  b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
  printf "\\x$(printf %02x $((b ^ 255)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
  touch -r "$TESTDIR/good.layer" "$1"
}

# A data byte: only the content hash can tell.
flip "$layer" $((8192 + 3 * 1048576 + 17))
expect_fail 'does not match the sealed hash' df vdisk verify v
expect_fail 'version 1' df vdisk verify v
out=$(df vdisk verify v --json 2>/dev/null) &&
  fail "verify --json exits 0 on a damaged layer"
/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert not r["ok"] and r["problems"][0]["version"] == 1, r
assert "does not match the sealed hash" in r["problems"][0]["problem"], r
' "$out" || fail "verify --json: $out"
cp -p "$TESTDIR/good.layer" "$layer"
df vdisk verify v >/dev/null

# A header byte: the checksum catches it.
flip "$layer" 20
expect_fail 'header checksum mismatch' df vdisk verify v
cp -p "$TESTDIR/good.layer" "$layer"

# Truncation.
truncate -s 6000 "$layer"
touch -r "$TESTDIR/good.layer" "$layer"
expect_fail 'truncated' df vdisk verify v
cp -p "$TESTDIR/good.layer" "$layer"

# An export of a damaged layer refuses to run rather than ship it.
touch "$layer"
expect_fail 'modified after sealing' df vdisk export v "$TESTDIR/out.raw"
cp -p "$TESTDIR/good.layer" "$layer"

# A broken manifest.
conf="$TESTDIR/farm/store/vdisks/v/vdisk.conf"
cp "$conf" "$TESTDIR/good.conf"
sed -i 's/^state = production$/state = golden/' "$conf"
expect_fail 'version state' df vdisk verify v
cp "$TESTDIR/good.conf" "$conf"
df vdisk verify v >/dev/null
echo PASS
