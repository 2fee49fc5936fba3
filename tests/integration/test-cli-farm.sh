#!/bin/bash
# The farm commands: init, objects, --json, atomic edits that keep
# comments and unknown keys, clear errors for bad input.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires python3 -c 'import json'

make_farm --name lab --site main --address 192.0.2.10
df site add upstairs --subnets "10.1.0.0/24, 10.2.0.0/16" --description "second floor"
df server add srv2 --address 10.1.0.2 --site upstairs --power 2 \
  --store-paths "store:$TESTDIR/srv2-store"
df store add shared --path /srv/shared --shared yes
df collection add lab101 --site upstairs

# Hand edits survive CLI rewrites.
cat >> "$TESTDIR/farm/farm.conf" <<'CONF'

# remember to renumber these in 2027
[site attic]
subnets = 10.9.0.0/24
colour = green
CONF
df server set srv2 --power 3
grep -q '^# remember to renumber these in 2027$' "$TESTDIR/farm/farm.conf" ||
  fail "comment lost"
grep -q '^colour = green$' "$TESTDIR/farm/farm.conf" || fail "unknown key lost"

# --json listings parse and carry the values.
df server list --json | python3 -c '
import json, sys
servers = {s["name"]: s for s in json.load(sys.stdin)}
assert servers["srv2"]["power"] == "3", servers
assert servers["srv2"]["site"] == "upstairs"
assert servers["srv2"]["store_paths"]["store"].endswith("srv2-store")
assert servers["srv1"]["address"] == "192.0.2.10"
'
df site info upstairs --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["description"] == "second floor", s
'
df server list | grep -q '^srv2 .*upstairs' || fail "table listing"

# Devices need a vDisk that exists.
make_image "$TESTDIR/img.raw" 1M 0:1
df vdisk import win "$TESTDIR/img.raw" --store store >/dev/null
df device add pc1 --mac 52:54:00:AA:00:01 --vdisk win --collection lab101 \
  --cache ram+disk:2G --personality room=101
expect_fail 'same MAC' df device add pc2 --mac 52-54-00-aa-00-01 --vdisk win
expect_fail 'not in any store' df device add pc3 --mac 52:54:00:aa:00:03 --vdisk nope
expect_fail 'has no mac' df device add pc4 --vdisk win
expect_fail 'is not a write cache' df device set pc1 --cache floppy
expect_fail 'device type' df device set pc1 --type gold
expect_fail 'invalid device name' df device add ../etc --mac 52:54:00:aa:00:05 --vdisk win
expect_fail 'is not a MAC' df device add pc5 --mac 52:54:00 --vdisk win
[ ! -e "$TESTDIR/farm/devices.d/pc2.conf" ] || fail "refused device was written"
df device info pc1 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["mac"] == "52:54:00:aa:00:01", d
assert d["personality"]["room"] == "101"
assert d["cache"] == "ram+disk:2G"
'
df device set pc1 --type test --unset cache
df device info pc1 | grep -q '^type  *test$' || fail "device set"
df device info pc1 | grep -q '^cache' && fail "unset kept the key"

# References are checked: a site in use cannot go.
expect_fail 'does not exist' df site remove upstairs
expect_fail 'does not exist' df server set srv2 --site nowhere
expect_fail 'used by device' df vdisk remove win
df device remove pc1
df vdisk remove win
df collection remove lab101

# Bad input: clear errors, non-zero exit, farm unchanged.
cp "$TESTDIR/farm/farm.conf" "$TESTDIR/before.conf"
expect_fail 'is not a list of subnets' df site set attic --subnets 10.0.0.0/99
expect_fail 'power' df server set srv2 --power lots
expect_fail 'unknown subcommand' df server frobnicate
expect_fail 'already exists' df site add attic
cmp "$TESTDIR/farm/farm.conf" "$TESTDIR/before.conf" || fail "farm changed"
expect_fail 'not a farm' "$DISKFARM" --farm "$TESTDIR/nowhere" server list
printf '[farm]\n[server x]\naddress = 1.2.3.4\npower = many\n' > "$TESTDIR/farm/farm.conf"
expect_fail 'power' df server list

# --help goes to stdout and exits 0, for every command.
for cmd in init site server store collection device vdisk version; do
  "$DISKFARM" $cmd --help | grep -q Usage || fail "$cmd --help"
done
"$DISKFARM" --help | awk 'length > 80 { exit 1 }' || fail "--help wider than 80"
echo PASS
