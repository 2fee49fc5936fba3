#!/bin/bash
# kill -9 of nbdkit during writes: a persistent cache reopens with every
# write acknowledged before the last completed FLUSH; a disk cache resumes
# on another nbdkit given the same cache directory.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires /usr/bin/nbdsh --version

make_vdisk_farm persistent
start_nbdkit
# The writer records each completed flush; it is killed mid-stream.
nbdsh_run dev/pc1@a -c '
import os, random
rnd = random.Random(7)
gen = 0
while True:
    gen += 1
    for i in range(32):
        block = rnd.randrange(2048)
        h.pwrite(gen.to_bytes(8, "little") * 512 + b"", block * 4096)
        open("'"$TESTDIR"'/blocks", "a").write("%d %d\n" % (block, gen))
    h.flush()
    with open("'"$TESTDIR"'/flushed.tmp", "w") as f:
        f.write(str(gen))
    os.rename("'"$TESTDIR"'/flushed.tmp", "'"$TESTDIR"'/flushed")
' &
writer=$!
# flushed_20: the writer has completed 20 flushes (and still runs).
flushed_20 () {
  kill -0 "$writer" 2>/dev/null || fail "the writer died: $(tail -5 "$TESTDIR/nbdkit.log")"
  [ -s "$TESTDIR/flushed" ] && [ "$(cat "$TESTDIR/flushed")" -ge 20 ]
}
deadline=$((SECONDS + 120))
until flushed_20; do
  [ $SECONDS -lt $deadline ] || fail "20 flushes took more than 120 s"
  sleep 0.05
done
stop_nbdkit KILL
# The writer writes until the server is gone: it must fail then.
if wait $writer 2>/dev/null; then fail "the writer did not see nbdkit die"; fi
flushed=$(cat "$TESTDIR/flushed")

start_nbdkit
# Every block's last write up to the flushed generation must be there
# (a later, unflushed write may be there instead).
nbdsh_run dev/pc1@b -c '
flushed = '"$flushed"'
last = {}
for line in open("'"$TESTDIR"'/blocks"):
    block, gen = map(int, line.split())
    if gen <= flushed:
        last[block] = gen
for block, gen in last.items():
    got = int.from_bytes(h.pread(8, block * 4096), "little")
    assert got >= gen, (block, got, gen)
    assert h.pread(4096, block * 4096) == got.to_bytes(8, "little") * 512, block
print("checked", len(last), "blocks up to generation", flushed)
'
stop_nbdkit

# A disk cache resumes on a second server sharing the cache directory.
df device set pc1 --cache disk
start_nbdkit cache-dir="$TESTDIR/caches" session-linger=60
nbdsh_run dev/pc1@s -c 'h.pwrite(b"\x77" * 8192, 1 << 20); h.flush()'
stop_nbdkit KILL
df server add srv2 --address 127.0.0.2
start_nbdkit server=srv2 cache-dir="$TESTDIR/caches"
nbdsh_run dev/pc1@s -c 'assert h.pread(8192, 1 << 20) == b"\x77" * 8192'
echo PASS
