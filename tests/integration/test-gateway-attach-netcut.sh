#!/bin/bash
# diskfarm-gateway attach, failover when the serving server's network is
# cut (ip link set down in its namespace) in the middle of fio through
# both front ends: no reply within --io-timeout 2 means the server is
# lost; the attach moves to the other server of the farm (--farm), whose
# replica has the same content hash.  The device keeps its writes in a
# local overlay (write cache "device"), so a server that cannot be told
# to let go does not matter.  Zero I/O errors, every block verifies, the
# pause is printed.  Then the link comes back (the connections given up
# on end gently, the server lives) and the second server's is cut: the
# attach moves back.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
need nbdkit --version
need fio --enghelp=nbd
need ip netns list
[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces)"
[ -c /dev/fuse ] || fail "no /dev/fuse"

# A vDisk of random data, a device whose writes stay on the client;
# two servers, each in a namespace joined to this one by a veth pair.
make_farm
make_image "$TESTDIR/base.raw" 256M 0:256
df vdisk import base "$TESTDIR/base.raw" >/dev/null
df device add pc1 --mac 52:54:00:00:00:01 --vdisk base --cache device
start_netns_servers

SOCK=$TESTDIR/a.sock
IMG=$TESTDIR/a.img
start_attach a dev/pc1@cut --farm "$TESTDIR/farm" --io-timeout 2 --dead-timeout 60 \
  --nbd-socket "$SOCK" --file "$IMG" --overlay "$TESTDIR/pc1.layer"
attach_log a | grep -q "from $NET.1.2:10809" || fail "not attached to srv1"

# reader STOPFILE: reads the part of the disk fio leaves alone (it
# comes from the servers) again and again, comparing it with the image,
# until STOPFILE appears.  Exit status: the wrong reads.
reader () {
  local bad=0
  until [ -e "$1" ] || ! kill -0 $$ 2>/dev/null; do
    cmp -s <(dd if="$IMG" bs=1M skip=192 count=64 iflag=direct status=none) \
      <(dd if="$TESTDIR/base.raw" bs=1M skip=192 count=64 status=none) ||
      bad=$((bad + 1))
  done
  return $bad
}

# cut_under_fio ROUND N: fio on both front ends (writes go to the
# overlay, reads of what it did not write yet to the server) and the
# reader; server N is cut meanwhile.  The round's pause is printed.
cut_under_fio () {
  local round=$1 n=$2 before stop=$TESTDIR/stop-reader-$1
  before=$(attach_log a | grep -c "now served by" || true)
  run_fio "cut$round-nbd" --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" \
    --rw=randrw --size=48M --offset=$(((round - 1) * 48))M &
  local fio_nbd=$!
  run_fio "cut$round-file" --ioengine=libaio --filename="$IMG" \
    --rw=randrw --offset=$((96 + (round - 1) * 48))M --size=48M &
  local fio_file=$!
  reader "$stop" &
  local rd=$!
  wait_for 60 "fio under way" test -s "$TESTDIR/pc1.layer"
  cut_link "$n"
  wait $fio_nbd || fail "round $round: fio through the NBD socket"
  wait $fio_file || fail "round $round: fio through the FUSE file"
  touch "$stop"
  wait $rd || fail "round $round: the reader read wrong data"
  [ "$(attach_log a | grep -c "now served by")" -gt "$before" ] ||
    { attach_log a >&2; fail "round $round: no failover"; }
  echo "network cut $round: $(attach_log a | grep "now served by" | tail -1 |
                              sed 's/.*attach: //')"
}

# back_up N: server N's link comes back; the connections the attach
# gave up on end gently (it drained them: its replies meet no reset,
# which nbdkit 1.32 does not survive), and the server lives on.
back_up () {
  cut_link "$1" up
  wait_for 60 "srv$1 to let go of the connections given up on" no_conns "$1"
  kill -0 "${SERVER_PID[srv$1]}" 2>/dev/null || fail "srv$1 died"
}
no_conns () {
  [ -z "$(ip netns exec "${NS[$1]}" ss -Htn state established '( sport = :10809 )')" ]
}

cut_under_fio 1 1
attach_log a | grep -q "lost $NET.1.2:10809 (no reply for 2 s)" ||
  fail "the cut was not noticed by the I/O timeout"
attach_log a | grep -q "now served by $NET.2.2:10809" || fail "not on srv2"
back_up 1
cut_under_fio 2 2
attach_log a | grep -q "now served by $NET.1.2:10809" || fail "not back on srv1"
back_up 2
stop_attach a
! grep -q "Assertion" "$TESTDIR"/srv*.log || fail "a server asserted"
echo PASS
