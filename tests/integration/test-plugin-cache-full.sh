#!/bin/bash
# A full write cache: writes fail with ENOSPC, reads keep working, what
# was written stays intact, the event is logged once and counted.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires /usr/bin/nbdsh --version

make_vdisk_farm ram:1M
df device add pc2 --mac 52:54:00:00:00:02 --vdisk base --cache disk:1M
start_nbdkit cache-limit=3M

for dev in pc1 pc2; do
  nbdsh_run "dev/$dev@full" -c '
import errno
data = bytes(range(256)) * 16                     # 4 KiB
for i in range(256):                              # exactly 1 MiB
    h.pwrite(data, i * 4096)
h.flush()
try:
    h.pwrite(data, 256 * 4096)
    raise SystemExit("write past the limit succeeded")
except nbd.Error as e:
    assert e.errno == "ENOSPC", e
# Rewriting cached blocks still works; reads of everything work.
h.pwrite(data, 0)
for i in range(256):
    assert h.pread(4096, i * 4096) == data, i
assert len(h.pread(1 << 20, 8 << 20)) == 1 << 20
# Zeroing frees room for new data.
h.zero(8192, 0)
h.pwrite(data, 300 * 4096)
assert h.pread(4096, 300 * 4096) == data
' || fail "cache-full behaviour of $dev"
done
[ "$(grep -c 'pc1 session full: write cache full' "$TESTDIR/nbdkit.log")" = 1 ] ||
  fail "cache full not logged exactly once"

# The server-wide limit (3M = 768 blocks) is shared by the caches open or
# lingering in RAM: pc1 holds 255 blocks; pc2's disk cache is parked on
# disk (resumable anywhere) and does not count.  pc3 gets the rest.
df device add pc3 --mac 52:54:00:00:00:03 --vdisk base --cache ram:4M
nbdsh_run dev/pc3@full -c '
import errno
data = b"\x42" * 4096
n = 0
try:
    while True:
        h.pwrite(data, n * 4096)
        n += 1
except nbd.Error as e:
    assert e.errno == "ENOSPC", e
assert n == 768 - 255, n
'
echo PASS
