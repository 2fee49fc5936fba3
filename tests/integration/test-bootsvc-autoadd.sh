#!/bin/bash
# Unknown MACs: ignored and logged (once a minute per MAC, every request
# counted) while the farm does not add them; with [farm] auto-add they
# become devices of the auto-add collection, written into devices.d with
# that collection's vDisk and type, and boot at once.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
net_setup
make_boot_farm
start_bootsvc --interface eth0
mac=52:54:00:00:00:aa

probe --mac $mac --pxe --arch 0 >"$TESTDIR/1.json"
probe --mac $mac --pxe --arch 0 >"$TESTDIR/2.json"
[ -s "$TESTDIR/1.json" ] && fail "unknown MAC answered: $(cat "$TESTDIR/1.json")"
[ -s "$TESTDIR/2.json" ] && fail "unknown MAC answered twice"
[ "$(grep -c "dhcp: ignoring unknown MAC $mac" "$TESTDIR/bootsvc.log")" = 1 ] ||
  fail "unknown MAC not logged once: $(cat "$TESTDIR/bootsvc.log")"
[ "$(status_field boot.unknown_macs)" = 2 ] || fail "unknown requests not counted"
[ -e "$TESTDIR/farm/devices.d/lab-5254000000aa.conf" ] && fail "added without auto-add"

# The farm changes under the running daemon: it notices by itself.
df collection add lab --vdisk v --type test >/dev/null
farm_setting auto-add yes
farm_setting auto-add-collection lab
probe --mac $mac --pxe --arch 7 >"$TESTDIR/3.json"
[ "$(json_get file <"$TESTDIR/3.json")" = snponly.efi ] ||
  fail "auto-added device not answered: $(cat "$TESTDIR/3.json")"
grep -q "farm: added device lab-5254000000aa ($mac) to collection \"lab\"" \
  "$TESTDIR/bootsvc.log" || fail "addition not logged"
df device info lab-5254000000aa --json >"$TESTDIR/dev.json"
/usr/bin/python3 - "$TESTDIR/dev.json" <<'PY' || fail "device: $(cat "$TESTDIR/dev.json")"
import json, sys
d = json.load(open(sys.argv[1]))
flat = json.dumps(d)
for want in ('"52:54:00:00:00:aa"', '"v"', '"test"', '"lab"'):
    assert want in flat, want
PY
# Known from now on: not added twice, and the CLI sees a valid farm.
probe --mac $mac --pxe --arch 7 >/dev/null
[ "$(status_field boot.devices_added)" = 1 ] || fail "added more than once"
df device list | grep -q lab-5254000000aa || fail "device list"

# A broken auto-add setting is refused, the farm in use is kept.
sed -i 's/^auto-add-collection = lab$/auto-add-collection = nowhere/' "$TESTDIR/farm/farm.conf"
probe --mac 52:54:00:00:00:01 --pxe --arch 0 >"$TESTDIR/4.json"
[ "$(json_get file <"$TESTDIR/4.json")" = undionly.kpxe ] || fail "stopped serving"
grep -q "farm: keeping the previous configuration: .*auto-add-collection" \
  "$TESTDIR/bootsvc.log" || fail "bad setting not reported"
echo PASS
