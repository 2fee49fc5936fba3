# diskfarm — helpers for the replicator tests: a farm of N servers on
# this machine, each with a store of its own and its own gateway on a
# loopback port.  Source it after tests/functions.sh:
#
#   repl_farm 2                  # srv1 (the source) and srv2, one farm
#   repl_import base 32M         # vdisk "base" on srv1
#   repl_start_gateways          # diskfarm-gateway for every server
#   repl_sync srv2 [ARGS...]     # diskfarm-replicator sync as srv2
#   repl_identical srv1 srv2     # the stores hold the same files
#
# Servers are srv1..srvN at 127.0.0.K; srvK's store is $TESTDIR/srvK
# (store "store").
# The farm (directory $TESTDIR/farm) names srv1 its config-server, so
# the replicator pulls from srv1.  Gateways log to $TESTDIR/gw-srvK.log
# and are stopped at exit.

GATEWAY="$DISKFARM_BUILD/gateway/diskfarm-gateway"
REPLICATOR="$DISKFARM_BUILD/replicator/diskfarm-replicator"
REPL_TOKEN=replication-test-token-0123456789
declare -A REPL_PORT REPL_GW_PID
REPL_N=0

requires_replicator () {
  [ -x "$GATEWAY" ] || skip "diskfarm-gateway is not built"
  [ -x "$REPLICATOR" ] || skip "diskfarm-replicator is not built"
  requires curl --version
}

# The [gateway] section (token file) and [farm] config-server of a farm
# directory: repl_gateway_settings DIR
repl_gateway_settings () {
  local dir=$1
  printf '%s\n' "$REPL_TOKEN" >"$dir/gateway.token"
  chmod 600 "$dir/gateway.token"
  printf '\n[gateway]\ntoken-file = gateway.token\n' >>"$dir/farm.conf"
  sed -i '/^\[farm\]$/a config-server = srv1' "$dir/farm.conf"
}

# repl_farm N: the farm of N servers described above.
repl_farm () {
  local n=$1 k
  REPL_N=$n
  df init --server-name srv1 --address 127.0.0.1 >/dev/null
  for ((k = 1; k <= n; k++)); do
    REPL_PORT[srv$k]=$(free_tcp_port)
    mkdir -p "$TESTDIR/srv$k"
    [ $k -eq 1 ] || df server add "srv$k" --address "127.0.0.$k" >/dev/null
    df server set "srv$k" --store-paths "store:$TESTDIR/srv$k" \
      --gateway "127.0.0.1:${REPL_PORT[srv$k]}" >/dev/null
  done
  repl_gateway_settings "$TESTDIR/farm"
}

# repl_import NAME SIZE: a vDisk of random data (its first half) on srv1.
repl_import () {
  local name=$1 size=$2
  truncate -s "$size" "$TESTDIR/$name.raw"
  dd if=/dev/urandom of="$TESTDIR/$name.raw" bs=1M count=$(( ${size%M} / 2 )) \
    conv=notrunc status=none
  df --server srv1 vdisk import "$name" "$TESTDIR/$name.raw" >/dev/null
}

# repl_start_gateway SERVER [ARGS...] (farm dir: $REPL_FARM_OF[SERVER],
# else $TESTDIR/farm); returns once it answers.
declare -A REPL_FARM_OF
repl_start_gateway () {
  local s=$1 farm i try f
  shift
  farm=${REPL_FARM_OF[$s]:-$TESTDIR/farm}
  for try in 1 2 3 4 5; do
    : >"$TESTDIR/gw-$s.log"
    "$GATEWAY" --farm "$farm" --server "$s" \
      --listen "127.0.0.1:${REPL_PORT[$s]}" "$@" >>"$TESTDIR/gw-$s.log" 2>&1 &
    REPL_GW_PID[$s]=$!
    cleanup_fn "kill ${REPL_GW_PID[$s]} 2>/dev/null; wait ${REPL_GW_PID[$s]} 2>/dev/null"
    for i in $(seq 200); do
      curl -s -o /dev/null -k "${REPL_SCHEME:-http}://127.0.0.1:${REPL_PORT[$s]}/v1/status" &&
        return 0
      kill -0 "${REPL_GW_PID[$s]}" 2>/dev/null || break
      sleep 0.05
    done
    # Another program took the port meanwhile: another one.
    grep -q "Address already in use" "$TESTDIR/gw-$s.log" || break
    REPL_PORT[$s]=$(free_tcp_port)
    for f in "$TESTDIR/farm" "${REPL_FARM_OF[@]}"; do
      "$DISKFARM" --farm "$f" server set "$s" \
        --gateway "127.0.0.1:${REPL_PORT[$s]}" >/dev/null
    done
  done
  cat "$TESTDIR/gw-$s.log" >&2
  fail "the gateway of $s did not start"
}

repl_stop_gateway () {
  local pid=${REPL_GW_PID[$1]}
  kill -"${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

repl_start_gateways () {
  local k
  for ((k = 1; k <= REPL_N; k++)); do
    repl_start_gateway "srv$k"
  done
}

# repl_sync SERVER [ARGS...]: one sync as SERVER (its output in
# $TESTDIR/sync.out, its --json report in $TESTDIR/sync.json when
# --json is given); fails the test if the sync fails.
repl_sync () {
  local s=$1
  shift
  "$REPLICATOR" sync --farm "${REPL_FARM_OF[$s]:-$TESTDIR/farm}" --server "$s" \
    "$@" >"$TESTDIR/sync.out" 2>"$TESTDIR/sync.err" || {
    cat "$TESTDIR/sync.out" "$TESTDIR/sync.err" >&2
    fail "diskfarm-replicator sync as $s failed"
  }
}

# repl_sync_fails MESSAGE SERVER [ARGS...]: the sync fails and says so.
repl_sync_fails () {
  local want=$1 s=$2
  shift 2
  expect_fail "$want" "$REPLICATOR" sync --farm \
    "${REPL_FARM_OF[$s]:-$TESTDIR/farm}" --server "$s" "$@"
}

# repl_json EXPR: a value of the last --json report (python expression
# over r, the report; the store's tree is t).
repl_json () {
  /usr/bin/python3 -c "
import json, sys
r = json.load(open('$TESTDIR/sync.out'))
t = [x for x in r['trees'] if x['tree'] == 'store'][0]
print($1)"
}

# repl_listing SERVER: every file of its vdisks/ with size, mtime (ns)
# and SHA-256, one line each.
repl_listing () {
  (cd "$TESTDIR/$1" && find vdisks -type f ! -name .lock | sort |
    while read -r p; do
      echo "$(stat -c '%n %s %.9Y' "$p") $(sha256sum <"$p" | cut -d' ' -f1)"
    done)
}

# repl_identical SERVER SERVER...: all hold the same files, bit for bit,
# with the same mtimes to the nanosecond.
repl_identical () {
  local a=$1 b
  shift
  repl_listing "$a" >"$TESTDIR/list.$a"
  for b in "$@"; do
    repl_listing "$b" >"$TESTDIR/list.$b"
    diff -u "$TESTDIR/list.$a" "$TESTDIR/list.$b" >&2 ||
      fail "the stores of $a and $b differ"
  done
}

# repl_no_partial SERVER: no file under its vdisks/ that is not a whole
# replica (nothing named like a staged or temporary file).
repl_no_partial () {
  local odd
  [ -d "$TESTDIR/$1/vdisks" ] || return 0
  odd=$(cd "$TESTDIR/$1" && find vdisks -type f ! -name .lock \
    ! -name vdisk.conf ! -name '[0-9][0-9][0-9][0-9].layer' ! -path '*/boot/*')
  [ -z "$odd" ] || fail "$1 has stray files: $odd"
}

# repl_status_is RC CHECK: within 30 s, "diskfarm status --json" exits RC
# and the python expression CHECK holds over its rows (rs) with no hash
# still being checked.  The last document is $TESTDIR/status.json.
repl_status_is () {
  local want=$1 check=$2 i rc
  for i in $(seq 150); do
    rc=0
    "$DISKFARM" --farm "$TESTDIR/farm" status --json >"$TESTDIR/status.json" \
      2>/dev/null || rc=$?
    [ "$rc" = "$want" ] && /usr/bin/python3 -c "
import json, sys
rs = json.load(open('$TESTDIR/status.json'))['replicas']
sys.exit(0 if not any(r['checking'] for r in rs) and ($check) else 1)" &&
      return 0
    sleep 0.2
  done
  cat "$TESTDIR/status.json" >&2
  fail "diskfarm status: not exit $want with $check"
}

# Every version identical on every server, nothing pending.
repl_status_identical () {
  repl_status_is 0 "all(r['replicas'] == 'identical' and not r['pending'] for r in rs)"
}
