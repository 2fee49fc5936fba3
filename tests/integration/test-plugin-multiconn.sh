#!/bin/bash
# Multi-conn: all connections of one device session share one cache, so
# a flush on one connection makes writes on another visible, in every
# cache mode.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires /usr/bin/nbdsh --version

make_vdisk_farm
for mode in ram disk ram+disk persistent; do
  df device set pc1 --cache $mode
  start_nbdkit
  /usr/bin/nbdsh -c '
import nbd
uri = "'"$(nbd_uri dev/pc1@mc)"'"
hs = []
for i in range(4):
    x = nbd.NBD()
    x.connect_uri(uri)
    assert x.can_multi_conn()
    hs.append(x)
for i, x in enumerate(hs):
    x.pwrite(bytes([i + 1]) * 4096, i * 65536)
hs[0].flush()
for x in hs:
    for i in range(4):
        assert x.pread(4096, i * 65536) == bytes([i + 1]) * 4096, (i, "'$mode'")
# Zero and trim on one connection, seen on the others.
hs[1].zero(65536, 0)
hs[1].flush()
assert hs[3].pread(4096, 0) == bytes(4096)
for x in hs:
    x.shutdown()
' || fail "multi-conn in $mode mode"
  stop_nbdkit
done
echo PASS
