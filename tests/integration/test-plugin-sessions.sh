#!/bin/bash
# Sessions: connections of one session share it; a closed session lingers
# and resumes exactly; a new session starts clean and discards the old
# cache; after the linger time it is gone.  No session name reaches the
# persistent cache.  One editor at a time; a private vDisk belongs to one
# device.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires /usr/bin/nbdsh --version

make_vdisk_farm ram+disk
start_nbdkit session-linger=2 ram-limit=64K

w () { nbdsh_run "dev/pc1@$1" -c "h.pwrite(b\"$2\" * 4096 * 64, 0); h.flush()"; }
r () { nbdsh_run "dev/pc1@$1" -c "print(chr(h.pread(1, 0)[0] or 46))"; }

w s1 A
[ "$(r s1)" = A ] || fail "session did not resume after reconnect"
ls "$TESTDIR"/farm/store/caches/pc1/sessions/s1.layer >/dev/null || fail "no cache file"
w s2 B
[ "$(r s2)" = B ] || fail "second session"
[ ! -e "$TESTDIR/farm/store/caches/pc1/sessions/s1.layer" ] || fail "old session's cache kept"
[ "$(r s1)" != A ] || fail "superseded session resumed"
# A session left alone expires after its linger time.  Any probe of it
# would resume it: wait for nbdkit to say it expired.
w s3 C
[ "$(r s3)" = C ] || fail "third session"
wait_for 30 "session s3 to expire" grep -q 'session pc1@s3 expired' "$TESTDIR/nbdkit.log"
[ "$(r s3)" != C ] || fail "session outlived its linger time"

# Session names never reach a device's persistent cache, and sessions
# named like it are discarded like any other.
df device add pc4 --mac 52:54:00:00:00:04 --vdisk base --cache persistent
w4 () { nbdsh_run "dev/pc4@$1" -c "h.pwrite(b\"$2\" * 4096 * 64, 0); h.flush()"; }
r4 () { nbdsh_run "dev/pc4@$1" -c "print(chr(h.pread(1, 0)[0] or 46))"; }
caches="$TESTDIR/farm/store/caches/pc4"
w4 boot1 P
df device set pc4 --cache disk
for n in persistent persistent.layer persistent2 .persistent PERSISTENT sessions; do
  [ "$(r4 "$n")" != P ] || fail "session $n reached the persistent cache"
  w4 "$n" x
  [ -e "$caches/sessions/$n.layer" ] || fail "session $n has no cache of its own"
done
[ "$(ls "$caches/sessions")" = sessions.layer ] ||
  fail "superseded sessions' caches kept: $(ls "$caches/sessions")"
[ "$(r4 sessions)" = x ] || fail "session \"sessions\" did not resume"
df device set pc4 --cache persistent
[ "$(r4 persistent)" = P ] || fail "the persistent cache was touched"
for n in .. . a/b ../pc1 "x y" "pc4@x"; do
  if nbdinfo "$(nbd_uri "dev/pc4@$n")" >/dev/null 2>&1; then
    fail "session name \"$n\" was accepted"
  fi
done

# One editor at a time, and no promote while it edits.
df version new base >/dev/null
nbdsh_run edit/base -c '
import subprocess
r = subprocess.run(["nbdinfo", "'"$(nbd_uri edit/base)"'"], capture_output=True)
assert r.returncode != 0, "a second editor got in"
r = subprocess.run(["'"$DISKFARM"'", "--farm", "'"$TESTDIR/farm"'", "version",
                    "promote", "base", "2", "test"], capture_output=True, text=True)
assert r.returncode != 0 and "open for writing elsewhere" in r.stderr, r
h.pwrite(b"E" * 4096, 0)
'
grep -q 'already being edited' "$TESTDIR/nbdkit.log" || fail "second editor not logged"
df version promote base 2 test >/dev/null

# A private vDisk: a second device is refused.
make_image "$TESTDIR/priv.raw" 8M 0:1
df vdisk import priv "$TESTDIR/priv.raw" >/dev/null
df vdisk set priv --access private
df device add pc2 --mac 52:54:00:00:00:02 --vdisk priv
df device add pc3 --mac 52:54:00:00:00:03 --vdisk priv
nbdsh_run dev/pc2@x -c '
import subprocess
r = subprocess.run(["nbdinfo", "'"$(nbd_uri dev/pc3@y)"'"], capture_output=True)
assert r.returncode != 0, "a second device opened a private vdisk"
h.pwrite(b"P" * 4096, 0)
h.flush()
'
grep -q 'private and in use by another device' "$TESTDIR/nbdkit.log" ||
  fail "private refusal not logged"
echo PASS
