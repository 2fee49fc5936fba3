#!/bin/bash
# diskfarm-replicator between two servers with stores of their own, over
# real gateways on loopback: a fresh replica (only a layer's data moves),
# a new version (only its layer moves), a merge (the new base comes as a
# delta on the old one, the old layers go), a flipped byte repaired by a
# delta, mtime drift fixed without a transfer, the farm directory, and
# a dry run.  The stores are compared file by file, bit for bit and to
# the nanosecond, after each step, and "diskfarm status" says identical;
# a version not replicated yet is pending on srv2.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires python3 -c 1
repl_farm 2
repl_import base 32M
head -c 3000000 /dev/urandom >"$TESTDIR/vmlinuz"
head -c 200000 /dev/urandom >"$TESTDIR/initrd.img"
df --server srv1 vdisk boot base --kernel "$TESTDIR/vmlinuz" \
  --initrd "$TESTDIR/initrd.img" >/dev/null
repl_start_gateways

moved () {      # moved HOW: the paths moved that way by the last sync
  repl_json "' '.join(sorted(m['path'] for m in t['moved'] if m['how'] == '$1'))"
}

# A dry run moves nothing and says what would.
repl_sync srv2 --dry-run
grep -q "store: download vdisks/base/0001.layer" "$TESTDIR/sync.out" ||
  fail "dry run: $(cat "$TESTDIR/sync.out")"
[ ! -e "$TESTDIR/srv2/vdisks" ] || fail "the dry run wrote files"

# A fresh replica: every file whole; of the layer only its data (half of
# the disk is zeros, not stored, not sent).
repl_sync srv2 --json
[ "$(moved download)" = "vdisks/base/0001.layer vdisks/base/boot/initrd.img vdisks/base/boot/vmlinuz vdisks/base/vdisk.conf" ] ||
  fail "fresh replica moved: $(moved download)"
wire=$(repl_json "t['bytes']['wire_in']")
[ "$wire" -lt $((16 * 1048576 + 3200000 + 1048576 + 500000)) ] ||
  fail "fresh replica: $wire bytes on the wire for 16 MiB of data"
repl_identical srv1 srv2
repl_no_partial srv2
repl_status_identical

# Again: nothing to do.
repl_sync srv2 --json
[ "$(repl_json "t['files']['identical']")" = 4 ] || fail "second sync moved files"
[ "$(repl_json "len(t['moved'])")" = 0 ] || fail "second sync: $(cat "$TESTDIR/sync.out")"

# A new version: its layer and the manifest move, nothing else.
df --server srv1 version new base >/dev/null
df --server srv1 version promote base 2 production >/dev/null
repl_status_is 1 "[r['pending'] for r in rs if r['version'] == 2] == [['srv2']]"
repl_sync srv2 --json
[ "$(moved download)" = "vdisks/base/0002.layer vdisks/base/vdisk.conf" ] ||
  fail "new version moved: $(moved download) / delta: $(moved delta)"
[ "$(repl_json "t['bytes']['wire_in']")" -lt 1048576 ] ||
  fail "a thin layer cost $(repl_json "t['bytes']['wire_in']") bytes"
repl_identical srv1 srv2
repl_status_identical

# A merge: a new base with the same content, then the old versions go.
# The new base comes as a delta on the old base: a fraction of its data.
df --server srv1 version merge base >/dev/null
df --server srv1 version delete base 2 >/dev/null
df --server srv1 version delete base 1 >/dev/null
repl_sync srv2 --json
[ "$(moved delta)" = "vdisks/base/0003.layer" ] ||
  fail "merge: delta $(moved delta), download $(moved download)"
[ "$(moved delete)" = "vdisks/base/0001.layer vdisks/base/0002.layer" ] ||
  fail "merge deleted: $(moved delete)"
[ "$(repl_json "t['bytes']['saved_by_deltas']")" -gt $((8 * 1048576)) ] ||
  fail "merge: the delta saved $(repl_json "t['bytes']['saved_by_deltas']") bytes"
repl_identical srv1 srv2
repl_status_identical

# One flipped byte in the replica's data, its mtime put back (silent
# damage): found by its hash, repaired by a delta.
layer=$TESTDIR/srv2/vdisks/base/0003.layer
mtime=$(stat -c %.9Y "$layer")
off=$(( $(stat -c %s "$layer") - 32 * 1048576 + 4096 * 77 + 5 ))
printf '\xff' | dd of="$layer" bs=1 seek=$off conv=notrunc status=none
touch -d "@$mtime" "$layer"
cmp -s "$layer" "$TESTDIR/srv1/vdisks/base/0003.layer" && fail "no byte flipped"
repl_sync srv2 --json
[ "$(moved delta)" = "vdisks/base/0003.layer" ] ||
  fail "flipped byte: delta $(moved delta), download $(moved download)"
[ "$(repl_json "t['bytes']['wire_in']")" -lt 1048576 ] ||
  fail "repairing one byte cost $(repl_json "t['bytes']['wire_in']") bytes"
repl_identical srv1 srv2
repl_status_identical

# Only the mtime differs: fixed after a hash check, no transfer.
touch -d "2001-02-03 04:05:06" "$layer" "$TESTDIR/srv2/vdisks/base/vdisk.conf"
repl_sync srv2 --json
[ "$(moved mtime)" = "vdisks/base/0003.layer vdisks/base/vdisk.conf" ] ||
  fail "mtime drift: $(moved mtime)"
[ "$(repl_json "t['bytes']['wire_in']")" = 0 ] || fail "mtime drift moved data"
repl_identical srv1 srv2
repl_status_identical

# The source's copy gets damaged: its gateway stops offering it, and the
# replica keeps its good copy (its vdisk.conf names it) with a warning.
src_layer=$TESTDIR/srv1/vdisks/base/0003.layer
cp -p --sparse=always "$src_layer" "$TESTDIR/good.layer"
mtime=$(stat -c %.9Y "$src_layer")
printf '\x42' | dd of="$src_layer" bs=1 seek=$off conv=notrunc status=none
touch -d "@$mtime" "$src_layer"
offered () {
  curl -sf -H "Authorization: Bearer $REPL_TOKEN" \
    "http://127.0.0.1:${REPL_PORT[srv1]}/v1/stores/store/manifest" |
    grep -q '"vdisks/base/0003.layer"'
}
for _ in $(seq 150); do offered || break; sleep 0.2; done
offered && fail "srv1 still offers its damaged layer"
if "$REPLICATOR" sync --farm "$TESTDIR/farm" --server srv2 >"$TESTDIR/sync.out" 2>&1; then
  :
fi
grep -q "0003.layer: kept: vdisks/base/vdisk.conf here names it" "$TESTDIR/sync.out" ||
  fail "no warning about the layer kept: $(cat "$TESTDIR/sync.out")"
[ -e "$layer" ] || fail "the replica's good copy was deleted"
cp -p --sparse=always "$TESTDIR/good.layer" "$src_layer"
touch -d "@$mtime" "$src_layer"
repl_sync srv2
repl_identical srv1 srv2
repl_status_identical

# The farm directory: srv2 gets one of its own, kept like srv1's.
cp -a "$TESTDIR/farm" "$TESTDIR/farm2"
REPL_FARM_OF[srv2]=$TESTDIR/farm2
echo "srv2 only" >"$TESTDIR/farm2/gateway.token.bak"
df --server srv1 device add pc1 --mac 52:54:00:00:00:01 --vdisk base >/dev/null
df --server srv1 device add pc2 --mac 52:54:00:00:00:02 --vdisk base >/dev/null
repl_sync srv2
cmp "$TESTDIR/farm/devices.d/pc1.conf" "$TESTDIR/farm2/devices.d/pc1.conf" ||
  fail "device pc1 did not reach srv2's farm"
df --server srv1 device remove pc2 >/dev/null
df --server srv1 device set pc1 --description "moved" >/dev/null
repl_sync srv2
[ ! -e "$TESTDIR/farm2/devices.d/pc2.conf" ] || fail "pc2 stayed on srv2"
cmp "$TESTDIR/farm/devices.d/pc1.conf" "$TESTDIR/farm2/devices.d/pc1.conf" ||
  fail "pc1's change did not reach srv2"
cmp "$TESTDIR/farm/farm.conf" "$TESTDIR/farm2/farm.conf" || fail "farm.conf differs"
[ "$(stat -c %.9Y "$TESTDIR/farm/farm.conf")" = "$(stat -c %.9Y "$TESTDIR/farm2/farm.conf")" ] ||
  fail "farm.conf's mtime differs"
[ -e "$TESTDIR/farm2/gateway.token.bak" ] || fail "a file of srv2's own went"
"$DISKFARM" --farm "$TESTDIR/farm2" device list | grep -q pc1 ||
  fail "srv2's farm does not load"
echo PASS
