#!/bin/bash
# diskfarm-replicator: what never moves (an unsealed maintenance layer, a
# write cache kept on the store), the bandwidth limit, progress on a
# terminal and a summary line otherwise, and the page cache: what the
# replication reads or writes, on the target and on the source, is not
# left in the page cache unless it was there before.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"

requires_replicator
requires python3 -c 1
requires script --version
requires fincore --version
repl_farm 2
repl_import base 32M                    # 16 MiB of data
df --server srv1 version new base >/dev/null    # version 2: maintenance
mkdir -p "$TESTDIR/srv1/caches/pc1"
head -c 1048576 /dev/urandom >"$TESTDIR/srv1/caches/pc1/cache.layer"
repl_start_gateways
layer1=$TESTDIR/srv1/vdisks/base/0001.layer
layer2=$TESTDIR/srv2/vdisks/base/0001.layer

# Pages of FILE in the page cache.
resident () {
  fincore -nbo PAGES "$1" | tr -d ' '
}
# Succeeds when FILE has at most MAX (default 0) pages in the page cache
# (else prints the count).
uncached () {
  local n
  n=$(resident "$1")
  [ "$n" -le "${2:-0}" ] || { echo "$n pages"; return 1; }
}
# Drops FILE from the page cache (written back first).
uncache () {
  sync "$1"
  dd if="$1" iflag=nocache count=0 status=none
  [ "$(resident "$1")" = 0 ] || fail "$1 stays in the page cache"
}

# The gateways have checked their layers' content hashes (in the
# background, once per file): that reader beside the transfer would make
# the pages counted below depend on which one read them first.
checked () {
  "$DISKFARM" --farm "$TESTDIR/farm" status --json >"$TESTDIR/status.json" 2>/dev/null
  /usr/bin/python3 -c "
import json, sys
rs = json.load(open('$TESTDIR/status.json'))['replicas']
sys.exit(1 if any(r['checking'] for r in rs) else 0)"
}
for _ in $(seq 150); do checked && break; sleep 0.2; done
checked || fail "the gateways still check their layers"

# On a terminal, at most 2 MiB/s: progress with rate and ETA; the 16 MiB
# of data take at least 6 s (a lower bound: a busy machine only slows
# it down).
uncache "$layer1"
start=$(date +%s%N)
script -qec "'$REPLICATOR' sync --farm '$TESTDIR/farm' --server srv2 --bwlimit 2M" \
  /dev/null </dev/null >"$TESTDIR/tty.out" 2>&1 ||
  { cat "$TESTDIR/tty.out" >&2; fail "the sync on a terminal failed"; }
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "16 MiB at --bwlimit 2M: $ms ms"
[ "$ms" -ge 6000 ] || fail "--bwlimit 2M: 16 MiB came in $ms ms"
grep -aq "/s, ETA [0-9]*:[0-9][0-9]" "$TESTDIR/tty.out" ||
  fail "no progress on the terminal: $(cat -v "$TESTDIR/tty.out")"
grep -aq "store: ok; 2 moved (2 whole" "$TESTDIR/tty.out" ||
  fail "no summary on the terminal: $(cat -v "$TESTDIR/tty.out")"

# What never moves: the unsealed layer of version 2 and the write cache.
# vdisk.conf comes (it names version 2, in maintenance, not its layer).
[ ! -e "$TESTDIR/srv2/vdisks/base/0002.layer" ] || fail "an unsealed layer moved"
[ ! -e "$TESTDIR/srv2/caches" ] || fail "a write cache moved"
cmp "$TESTDIR/srv1/vdisks/base/vdisk.conf" "$TESTDIR/srv2/vdisks/base/vdisk.conf" ||
  fail "vdisk.conf differs"

# The page cache: the new replica was dropped once durable; the source's
# layer, read by its gateway for the transfer, was not cached before and
# is not now.
[ "$(resident "$layer2")" = 0 ] ||
  fail "the new replica stays in srv2's page cache: $(resident "$layer2") pages"
# The gateway drops what it read for the transfer when each request
# ends, and again at the connection's next request or its end (pages the
# kernel was still reading ahead), which the gateway sees a moment after
# the replicator has exited.  Every page: replication bodies are copied,
# not sent with sendfile, whose pages the socket holds on to for a while
# after the client read them (then up to 4 MiB stayed cached).
wait_for 10 "srv1 to drop the source's layer from its page cache" \
  uncached "$layer1"

# Not on a terminal: a summary line, no progress.
repl_sync srv2
grep -q "^store: ok; 0 moved (0 whole, 0 by delta), 0 mtime fixed, 0 deleted, 2 identical, 0 failed;" \
  "$TESTDIR/sync.out" || fail "no summary line: $(cat "$TESTDIR/sync.out")"
grep -q "ETA" "$TESTDIR/sync.out" "$TESTDIR/sync.err" && fail "progress without a terminal"

# Hashing local files (--verify) leaves the page cache as it found it:
# a layer that was cached stays cached, one that was not is not.
cat "$layer2" >/dev/null
before=$(resident "$layer2")
repl_sync srv2 --verify
[ "$(resident "$layer2")" = "$before" ] ||
  fail "a cached replica lost pages: $before before, $(resident "$layer2") after"
uncache "$layer2"
repl_sync srv2 --verify
[ "$(resident "$layer2")" = 0 ] ||
  fail "hashing left the replica in the page cache: $(resident "$layer2") pages"

# A delta: the source's gateway reads its whole layer to compute it, the
# target reads its basis for the signature; neither stays cached.
printf '\xff' | dd of="$layer2" bs=1 seek=$(( $(stat -c %s "$layer2") - 32 * 1048576 + 12345 )) \
  conv=notrunc status=none
uncache "$layer2"
uncache "$layer1"
repl_sync srv2 --json
[ "$(repl_json "' '.join(m['how'] for m in t['moved'])")" = delta ] ||
  fail "the damage was not repaired by a delta: $(cat "$TESTDIR/sync.out")"
[ "$(resident "$layer2")" = 0 ] ||
  fail "the patched replica stays in srv2's page cache: $(resident "$layer2") pages"
wait_for 10 "srv1 to drop the layer it read for the delta" uncached "$layer1"

# A source layer its devices read (cached) keeps its pages.
cat "$layer1" >/dev/null
before=$(resident "$layer1")
rm "$layer2"
repl_sync srv2
cmp "$layer1" "$layer2" || fail "the replica differs"
[ "$(resident "$layer1")" = "$before" ] ||
  fail "the source's cached layer lost pages: $before before, $(resident "$layer1") after"
echo PASS
