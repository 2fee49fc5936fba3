#!/bin/bash
# NBD_CMD_FLAG_FAST_ZERO: zeroing whole blocks is fast (they are only
# marked) in every write cache mode and in a private vDisk; zeroing a part
# of a block would write data, so the server declines with ENOTSUP and
# changes nothing.  Without the flag the same request zeroes.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires /usr/bin/nbdsh --version

make_vdisk_farm ram 16M
# A private vDisk with 64 KiB blocks: the chain decides on its own blocks.
make_image "$TESTDIR/priv.raw" 16M 0:16
df vdisk import priv "$TESTDIR/priv.raw" --block-size 65536 >/dev/null
df vdisk set priv --access private
df device add pc2 --mac 52:54:00:00:00:02 --vdisk priv
start_nbdkit

check () {     # check EXPORT BLOCK_SIZE
  nbdsh_run "$1" -c "
import errno, os
bs = $2
assert h.can_fast_zero(), 'fast zero not advertised'
data = os.urandom(4 * bs)
h.pwrite(data, bs)
# Whole blocks: fast, and they read as zeros.
h.zero(2 * bs, bs, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(2 * bs, bs) == bytes(2 * bs)
# Part of a block: declined, nothing changed.
for length, offset in ((bs // 2, 3 * bs), (bs, 3 * bs + 512)):
    try:
        h.zero(length, offset, nbd.CMD_FLAG_FAST_ZERO)
        raise SystemExit('fast zero of %d at %d was accepted' % (length, offset))
    except nbd.Error as e:
        assert e.errno == 'ENOTSUP', e
    assert h.pread(2 * bs, 3 * bs) == data[2 * bs:], 'declined zero changed data'
# The same without the flag zeroes.
h.zero(bs // 2, 3 * bs, 0)
assert h.pread(bs // 2, 3 * bs) == bytes(bs // 2)
assert h.pread(bs // 2, 3 * bs + bs // 2) == data[2 * bs + bs // 2:3 * bs]
h.flush()
" || fail "fast zero on $1"
}

for mode in ram disk ram+disk persistent; do
  df device set pc1 --cache $mode
  check "dev/pc1@fz-${mode/+/-}" 4096
done
check dev/pc2@fz 65536
# Declining a fast zero is not an error worth logging.
if grep -q 'zero:.*not fast' "$TESTDIR/nbdkit.log"; then
  fail "declined fast zeroes were logged as errors"
fi
echo PASS
