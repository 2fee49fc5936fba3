# diskfarm — helpers for the tests of diskfarm-gateway attach.  Source it
# after tests/functions.sh:
#
#   make_vdisk_farm disk 256M
#   add_servers srv2               # more servers on the farm's store
#   start_server srv1              # nbdkit on $TESTDIR/srv1.sock
#   start_tcp_server t1 srv1       # nbdkit on 127.0.0.1:${TCP_PORT[t1]}
#   start_attach a dev/pc1@s1 --servers unix:$TESTDIR/srv1.sock \
#     --nbd-socket "$TESTDIR/a.sock" --file "$TESTDIR/a.img"
#   ...
#   stop_attach a                  # SIGTERM; it must exit 0
#
# Servers log to $TESTDIR/NAME.log, attaches to $TESTDIR/NAME.attach.log.

GATEWAY="$DISKFARM_BUILD/gateway/diskfarm-gateway"
declare -A SERVER_PID ATTACH_PID TCP_PORT

# A killed attach leaves its FUSE file mounted (dead): unmount what is
# left under $TESTDIR, last of all.
_attach_unmount () {
  local m
  for m in $(awk -v d="$TESTDIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts); do
    umount -l "$m" 2>/dev/null
  done
}
cleanup_fn _attach_unmount

# When the test fails, the end of every log it kept says why (the
# directory goes with the test).
_attach_show_logs () {
  local f
  # DISKFARM_KEEP_LOGS=DIR keeps them all, for a hunt.
  [ -z "${DISKFARM_KEEP_LOGS:-}" ] || cp "$TESTDIR"/*.log "$DISKFARM_KEEP_LOGS"/ 2>/dev/null
  [ "${status:-0}" = 0 ] && return 0
  for f in "$TESTDIR"/*.log; do
    [ -s "$f" ] || continue
    echo "--- ${f##*/} (end) ---" >&2
    tail -15 "$f" >&2
  done
}
cleanup_fn _attach_show_logs
cleanup_fn _servers_sanitizer_check

# A sanitizer build's plugin (in every server the test started) must not
# have reported anything: checked at the end, after the servers stopped.
_servers_sanitizer_check () {
  local f
  for f in "$TESTDIR"/srv*.log; do
    [ -f "$f" ] || continue
    if grep -Eq 'ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$f"; then
      grep -E -A40 'Sanitizer|runtime error:' "$f" >&2
      echo "FAIL: a sanitizer reported an error in ${f##*/} (above)" >&2
      _sanitizer_failed=1
    fi
  done
}

# need CMD [ARGS...]: the test fails (not skips) unless the command runs:
# CI has everything these tests use.
need () {
  "$@" >/dev/null 2>&1 || fail "needs: $*"
}

# add_servers NAME...: more servers in the farm, with the farm's store
# at the same path: shared storage, as far as the test can tell.
add_servers () {
  local s
  for s in "$@"; do
    df server add "$s" --address 127.0.0.1
  done
  df store set store --shared yes
}

# start_server NAME [NBDKIT-PLUGIN-ARGS...]: the plugin as server NAME
# on the unix socket $TESTDIR/NAME.sock (also $NBD_SOCK, for nbd_uri),
# publishing its sessions in $TESTDIR/stats-NAME.
start_server () {
  local name=$1 sock=$TESTDIR/$1.sock
  shift
  rm -f "$sock"
  _run_plugin "$name" "$name" "-U $sock" "$@"
  wait_for 20 "nbdkit $name" test -S "$sock"
  NBD_SOCK=$sock
}

# start_tcp_server KEY NAME [NBDKIT-PLUGIN-ARGS...]: the plugin as server
# NAME on 127.0.0.1, on a free port TCP_PORT[KEY]: how a farm's clients
# reach it.  Its PID is SERVER_PID[KEY] (kill_server KEY); it publishes
# its sessions in $TESTDIR/stats-KEY.
start_tcp_server () {
  local key=$1 name=$2 port
  shift 2
  port=$(free_tcp_port)
  _run_plugin "$key" "$name" "-i 127.0.0.1 -p $port" "$@"
  wait_for 20 "nbdkit $key" nbdinfo --list "nbd://127.0.0.1:$port"
  TCP_PORT[$key]=$port
}

# _run_plugin KEY NAME LISTEN [NBDKIT-PLUGIN-ARGS...]: nbdkit with the
# plugin as server NAME in the background, listening as the words of
# LISTEN say; SERVER_PID[KEY], log $TESTDIR/KEY.log, sessions published
# in $TESTDIR/stats-KEY.
_run_plugin () {
  local key=$1 name=$2 listen=$3
  shift 3
  env $(sanitizer_preload "$PLUGIN") \
    nbdkit -f $listen "$PLUGIN" farm="$TESTDIR/farm" server="$name" \
    stats-dir="$TESTDIR/stats-$key" "$@" 2>>"$TESTDIR/$key.log" &
  SERVER_PID[$key]=$!
  cleanup_fn "kill -9 ${SERVER_PID[$key]} 2>/dev/null; wait ${SERVER_PID[$key]} 2>/dev/null"
}

# kill_server NAME [SIGNAL]: stops it (SIGKILL by default) and waits.
kill_server () {
  kill -"${2:-KILL}" "${SERVER_PID[$1]}" 2>/dev/null || true
  wait "${SERVER_PID[$1]}" 2>/dev/null || true
}

# start_attach NAME EXPORT ARGS...: the attach in the background; returns
# once it has attached (its pid file is written).
start_attach () {
  local name=$1 pidfile=$TESTDIR/$1.attach.pid
  shift
  rm -f "$pidfile"
  "$GATEWAY" attach "$@" -P "$pidfile" >>"$TESTDIR/$name.attach.log" 2>&1 &
  ATTACH_PID[$name]=$!
  cleanup_fn "kill -9 ${ATTACH_PID[$name]} 2>/dev/null; wait ${ATTACH_PID[$name]} 2>/dev/null"
  for _ in $(seq 400); do
    [ -s "$pidfile" ] && return 0
    kill -0 "${ATTACH_PID[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  cat "$TESTDIR/$name.attach.log" >&2
  fail "the attach $name did not attach"
}

# stop_attach NAME: SIGTERM; the attach must flush, detach and exit 0.
stop_attach () {
  local status=0
  kill -TERM "${ATTACH_PID[$1]}"
  wait "${ATTACH_PID[$1]}" || status=$?
  [ $status -eq 0 ] || { cat "$TESTDIR/$1.attach.log" >&2;
                         fail "the attach $1 exited with status $status"; }
  grep -q "detached" "$TESTDIR/$1.attach.log" || fail "$1 did not detach"
  no_sanitizer_reports "$1"
}

# no_sanitizer_reports NAME: the attach's log has no ASan/TSan/UBSan
# report (for sanitizer builds, also of attaches expected to fail).
no_sanitizer_reports () {
  ! grep -q "Sanitizer\|runtime error:" "$TESTDIR/$1.attach.log" ||
    { cat "$TESTDIR/$1.attach.log" >&2; fail "sanitizer report from $1"; }
}

# attach_log NAME: its log so far.
attach_log () {
  cat "$TESTDIR/$1.attach.log"
}

# run_fio NAME ARGS...: fio writing with crc32c verification, then
# reading everything back; fails the test on any I/O error or bad block.
#   run_fio nbd --ioengine=nbd --uri=...
#   run_fio file --ioengine=libaio --filename=...
run_fio () {
  local name=$1
  shift
  fio --name="$name" --rw=randwrite --bs=4k --iodepth=16 --direct=1 \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --exitall_on_error \
      --verify_state_save=0 \
      --output-format=terse --terse-version=3 "$@" \
      >"$TESTDIR/fio-$name.out" 2>&1 ||
    { cat "$TESTDIR/fio-$name.out" >&2; fail "fio $name failed"; }
  # Terse field 5 is the error count.
  [ "$(grep -a '^3;' "$TESTDIR/fio-$name.out" | cut -d';' -f5)" = 0 ] ||
    { cat "$TESTDIR/fio-$name.out" >&2; fail "fio $name saw I/O errors"; }
}

# start_netns_servers: servers srv1 and srv2 of the farm (added if need
# be; the store is marked shared), each nbdkit in a network
# namespace of its own joined to this one by a veth pair: srv N at
# $NET.N.2:10809, this side $NET.N.1.  cut_link N [down|up] cuts its
# link (or brings it back).  Everything goes at the end of the test.
declare -A NS
start_netns_servers () {
  local i hostif
  [ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces)"
  NET=10.$(($$ % 200 + 20))
  for i in 1 2; do
    NS[$i]=dfgw$$-$i
    hostif=dfgw$$h$i
    netns_add "${NS[$i]}" || fail "cannot create namespace ${NS[$i]}"
    ip link add "$hostif" type veth peer name eth0 netns "${NS[$i]}" ||
      fail "cannot create a veth pair"
    cleanup_fn "ip link del $hostif 2>/dev/null"
    ip addr add "$NET.$i.1/24" dev "$hostif"
    ip link set "$hostif" up
    ip netns exec "${NS[$i]}" ip addr add "$NET.$i.2/24" dev eth0
    ip netns exec "${NS[$i]}" ip link set eth0 up
    df server set srv$i --address "$NET.$i.2" 2>/dev/null ||
      df server add srv$i --address "$NET.$i.2"
    ip netns exec "${NS[$i]}" env $(sanitizer_preload "$PLUGIN") \
      nbdkit -f -i "$NET.$i.2" -p 10809 "$PLUGIN" farm="$TESTDIR/farm" \
      server=srv$i stats-dir="$TESTDIR/stats-srv$i" 2>>"$TESTDIR/srv$i.log" &
    SERVER_PID[srv$i]=$!
    cleanup_fn "kill -9 ${SERVER_PID[srv$i]} 2>/dev/null; wait ${SERVER_PID[srv$i]} 2>/dev/null"
    wait_for 20 "nbdkit srv$i" nbdinfo --list "nbd://$NET.$i.2"
  done
  df store set store --shared yes
}

cut_link () {
  ip netns exec "${NS[$1]}" ip link set eth0 "${2:-down}"
}
