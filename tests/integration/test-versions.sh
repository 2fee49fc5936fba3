#!/bin/bash
# The version life cycle through the CLI: new, promote, rollback, merge,
# delete, with what devices of each type see.
. "$DISKFARM_SRCDIR/tests/functions.sh"

make_farm
make_image "$TESTDIR/disk.raw" 8M 0:2
df vdisk import v "$TESTDIR/disk.raw" >/dev/null

state_of () {   # state_of VERSION
  df vdisk info v --json | python3 -c "
import json, sys
for x in json.load(sys.stdin)['versions']:
    if x['version'] == $1: print(x['state'])"
}

[ "$(df version new v)" = 2 ] || fail "new did not print 2"
[ "$(state_of 2)" = maintenance ] || fail "new version not in maintenance"
expect_fail 'already in maintenance' df version new v
# A writer's hold that ends within a moment (an editor's server closing
# its connection) is waited for; one that lasts is refused
# (test-plugin-sessions.sh).
layer=$TESTDIR/farm/store/vdisks/v/0002.layer
flock -x "$layer" sh -c ": >'$TESTDIR/held'; sleep 1" &
holder=$!
wait_for 10 "the hold on the layer" test -e "$TESTDIR/held"
df version promote v 2 test >/dev/null || fail "promote did not wait for a short hold"
wait $holder
[ "$(state_of 2)" = test ] || fail "promote to test"
expect_fail 'cannot become test' df version promote v 2 test
df version promote v 2 production >/dev/null
df vdisk info v --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["production"] == 2, d
v2 = [x for x in d["versions"] if x["version"] == 2][0]
assert v2["sealed"] and v2["hash"].startswith("sha256:") and v2["mtime_ns"] > 0
'
[ "$(df version new v)" = 3 ] || fail "second new"
df version promote v 3 production >/dev/null
df version rollback v | grep -q 'version 3: retired' || fail "rollback"
df vdisk info v --json | python3 -c '
import json, sys; assert json.load(sys.stdin)["production"] == 2'
expect_fail 'depends on version 1' df version delete v 1
expect_fail 'already a base' df version merge v 1
df version merge v 2 | grep -q 'version 4: merged' || fail "merge"
df vdisk export v@2 "$TESTDIR/v2.raw"
df vdisk export v@4 "$TESTDIR/v4.raw"
cmp "$TESTDIR/v2.raw" "$TESTDIR/v4.raw" || fail "merge changed the content"
df version delete v 3 >/dev/null
df version delete v 2 >/dev/null
df version delete v 1 >/dev/null
df vdisk verify v >/dev/null
expect_fail 'only version' df version delete v 4
expect_fail 'not a version number' df version delete v x
expect_fail 'no version 7' df version promote v 7 production
expect_fail 'version state' df version promote v 4 golden
echo PASS
