#!/bin/bash
# diskfarm-replicator side by side with its peers, in the same run:
#
#   whole    a fresh 2 GiB layer: replicator vs curl from the same gateway
#            (curl writes without fsync; shown with a sync too)
#   delta    a merged base whose data differs in 1% of its 64 KiB blocks
#            from the base the replica holds: replicator (delta on that
#            base) vs rdiff signature + delta + patch on the same pair;
#            bytes on the wire vs rsync --no-whole-file from a local
#            rsync daemon (the replicator fsyncs what it writes, rdiff
#            does not: shown with a sync too)
#   fan-out  one source, 8 servers syncing at once (fan-out rounds,
#            relayed as it arrives, and every server from the source)
#            vs one server alone: on loopback, and again with every
#            gateway's --upload-rate at BENCH_CAP (40M)
#
#   meson test -C build --suite bench -v bench-replicator.sh
# BENCH_MIB (default 2048) sizes the layer, BENCH_FAN_MIB (512) the
# fan-out's; BENCH_CASES (default "whole delta fanout") picks the cases
# (delta needs whole).  BENCH_REPLICATOR_BEFORE=PATH: another build's
# diskfarm-replicator, timed in the same rounds of the whole case (before
# and after a change, in one run).  Every figure is the best of
# BENCH_ROUNDS (3) rounds that alternate the tools (the capped fan-out:
# BENCH_CAP_ROUNDS, 1).  On loopback nothing limits the network: CPU and
# disk do, and 8 receivers share the cores and the disk of one machine;
# with the uplinks capped (BENCH_CAP, each gateway's --upload-rate), the
# network is the cost, as between real servers (docs/performance.md).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
. "$DISKFARM_SRCDIR/tests/lib/replicator.sh"
requires_replicator
requires rdiff --version
requires rsync --version
requires /usr/bin/nbdsh --version

MIB=${BENCH_MIB:-2048}
FAN_MIB=${BENCH_FAN_MIB:-512}
ROUNDS=${BENCH_ROUNDS:-3}
CASES=" ${BENCH_CASES:-whole delta fanout} "
want () { case "$CASES" in *" $1 "*) return 0 ;; esac; return 1; }
CAP=${BENCH_CAP:-40M}                   # each gateway's --upload-rate
CAP_ROUNDS=${BENCH_CAP_ROUNDS:-1}
keep () { awk -v a="$1" -v t="$2" 'BEGIN { print (t < a) ? t : a }'; }

repl_farm 9
repl_start_gateway srv1 --delta-cache 0 -D delta  # every delta anew
for k in 2 3 4 5 6 7 8 9; do repl_start_gateway srv$k; done
store1=$TESTDIR/srv1

# sync_secs SERVER [ARGS...]: one sync of the store (not the farm
# directory), its wall time; its JSON report in $TESTDIR/SERVER.json.
sync_secs () {
  local s=$1
  shift
  secs "$REPLICATOR" sync --farm "$TESTDIR/farm" --server "$s" --store store \
    --json "$@"
}
sync_json () {
  local s=$1
  shift
  "$REPLICATOR" sync --farm "$TESTDIR/farm" --server "$s" --store store \
    --json "$@" >"$TESTDIR/$s.json" 2>"$TESTDIR/$s.err" ||
    fail "sync $s failed: $(cat "$TESTDIR/$s.err")"
}
wire () {       # wire FILE: bytes on the wire of a JSON report
  /usr/bin/python3 -c "
import json
t = [x for x in json.load(open('$1'))['trees'] if x['tree'] == 'store'][0]
print(t['bytes']['wire_in'] + t['bytes']['wire_out'])"
}
# moved_by FIELD PATH FILES...: a count of each value of FIELD ("from":
# where from, "how": how) over the reports' moves of PATH.
moved_by () {
  /usr/bin/python3 -c "
import json, sys
n = {}
for f in sys.argv[3:]:
    t = [x for x in json.load(open(f))['trees'] if x['tree'] == 'store'][0]
    for m in t['moved']:
        if m['path'] == sys.argv[2]:
            n[m[sys.argv[1]]] = n.get(m[sys.argv[1]], 0) + 1
print(' '.join('%s:%d' % kv for kv in sorted(n.items())))" "$@"
}
empty_stores () {
  local s
  for s in "$@"; do rm -rf "$TESTDIR/$s/vdisks" "$TESTDIR/$s/.replicator"; done
  sync
}

fan_bytes=$((FAN_MIB << 20))
fan_rows () {   # fan_rows PREFIX LABEL
  local p=$1
  printf '%-46s %10s %10s %8s %8s\n' "fan-out ${FAN_MIB} MiB$2: 1 -> 1 server" \
    "${T[${p}one]:--}" "$(rate "$fan_bytes" "${T[${p}one]:--}")" "" "${C[${p}one]:--}"
  printf '%-46s %10s %10s %8s %8s\n' "  1 -> 8, fan-out rounds" "${T[${p}rounds]:--}" "" \
    "$(ratio "${T[${p}rounds]:--}" "${T[${p}one]:--}")" "${C[${p}rounds]:--}"
  printf '%-46s %10s %10s %8s %8s\n' "  1 -> 8, relayed as it arrives" "${T[${p}relay]:--}" "" \
    "$(ratio "${T[${p}relay]:--}" "${T[${p}one]:--}")" "${C[${p}relay]:--}"
  printf '%-46s %10s %10s %8s %8s\n' "  1 -> 8, all from the source" "${T[${p}all]:--}" "" \
    "$(ratio "${T[${p}all]:--}" "${T[${p}one]:--}")" "${C[${p}all]:--}"
  echo "    the layer came (rounds): ${FROM[${p}rounds]:--}; (relayed): ${FROM[${p}relay]:--} (${HOW[${p}relay]:--})"
  # Eight receivers need at least eight times one's CPU, on nproc cores.
  printf '    CPU floor of 1 -> 8: 8 x %s CPU s / %s cores = %s s (%s x 1 -> 1)\n' \
    "${C[${p}one]:--}" "$(nproc)" \
    "$(awk -v c="${C[${p}one]:--}" -v n="$(nproc)" 'BEGIN { printf "%.1f", 8 * c / n }')" \
    "$(awk -v c="${C[${p}one]:--}" -v n="$(nproc)" -v t="${T[${p}one]:--}" 'BEGIN { printf "%.2f", 8 * c / n / t }')"
}
fan_table () {
  echo
  echo "fan-out (CPU: seconds of all replicators and gateways together)"
  printf '%-46s %10s %10s %8s %8s\n' "case" "seconds" "MiB/s" "ratio" "CPU s"
  fan_rows "" ", loopback"
  fan_rows cap_ ", uplinks capped at $CAP/s"
}

# ---- fan-out ----
if want fanout; then
# Four ways, alternated in each round: one server alone; eight at once
# in fan-out rounds (store and forward: a peer serves the file once it
# holds it whole); eight at once relayed (each takes it from a peer
# whose copy is still arriving); eight at once all from the source.
# Wall time, and the CPU seconds all the replicators and gateways used.
random_image "$TESTDIR/fan.raw" "$FAN_MIB"
df --server srv1 vdisk import fan "$TESTDIR/fan.raw" >/dev/null
fan_layer=vdisks/fan/0001.layer
eight=(srv2 srv3 srv4 srv5 srv6 srv7 srv8 srv9)
all_servers=(srv1 "${eight[@]}")
jsons=()
for s in "${eight[@]}"; do jsons+=("$TESTDIR/$s.json"); done
TICK=$(getconf CLK_TCK)
gw_ticks () {   # CPU ticks the gateways have used so far
  local s t=0
  for s in "${all_servers[@]}"; do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/${REPL_GW_PID[$s]}/stat")))
  done
  echo "$t"
}
# run_syncs SERVERS... -- ARGS...: at once; each report in
# $TESTDIR/srvK.json, each replicator's CPU seconds in srvK.cpu.
run_syncs () {
  local s pids=() servers=()
  while [ "$1" != -- ]; do servers+=("$1"); shift; done
  shift
  for s in "${servers[@]}"; do
    /usr/bin/time -f "%U %S" -o "$TESTDIR/$s.cpu" \
      "$REPLICATOR" sync --farm "$TESTDIR/farm" --server $s --store store \
      --json "$@" >"$TESTDIR/$s.json" 2>"$TESTDIR/$s.err" &
    pids+=($!)
  done
  for s in "${pids[@]}"; do wait "$s" || return 1; done
}
# fan_case NAME SERVERS... -- ARGS...: one timed run from empty stores;
# keeps the best wall time in T_NAME, its CPU seconds in C_NAME.
fan_case () {
  local name=$1 t g0 g1 rcpu servers=() s
  shift
  for s in "$@"; do [ "$s" = -- ] && break; servers+=("$s"); done
  empty_stores "${eight[@]}"
  g0=$(gw_ticks)
  t=$(secs run_syncs "$@") || { cat "$TESTDIR"/srv*.err >&2; fail "fan-out case $name failed"; }
  g1=$(gw_ticks)
  rcpu=$(for s in "${servers[@]}"; do cat "$TESTDIR/$s.cpu"; done |
    awk '{ c += $1 + $2 } END { printf "%.1f", c }')
  local cpu
  cpu=$(awk -v r="$rcpu" -v g=$((g1 - g0)) -v k="$TICK" 'BEGIN { printf "%.1f", r + g / k }')
  if [ -z "${T[$name]:-}" ] || awk -v a="$t" -v b="${T[$name]}" 'BEGIN { exit !(a < b) }'; then
    T[$name]=$t
    C[$name]=$cpu
  fi
  if [ "${#servers[@]}" -gt 1 ]; then
    FROM[$name]=$(moved_by from "$fan_layer" "${jsons[@]}")
    HOW[$name]=$(moved_by how "$fan_layer" "${jsons[@]}")
  fi
  repl_identical srv1 "${servers[@]}"
}
# fan_all PREFIX ROUNDS: the four cases, alternated, ROUNDS times.
fan_all () {
  local p=$1 r
  for r in $(seq "$2"); do
    fan_case "${p}one" srv2 --
    fan_case "${p}rounds" "${eight[@]}" -- --fanout rounds
    fan_case "${p}relay" "${eight[@]}" --
    fan_case "${p}all" "${eight[@]}" -- --fanout-min 1T
  done
}
declare -A T C FROM HOW
fan_all "" "$ROUNDS"
# The same with every gateway's uplink capped: the network is then the
# scarce resource, as between real servers, not the 2 cores that the 8
# receivers share on loopback.
for s in "${all_servers[@]}"; do
  repl_stop_gateway "$s"
  repl_start_gateway "$s" --upload-rate "$CAP"
done
fan_all cap_ "$CAP_ROUNDS"
for s in "${all_servers[@]}"; do
  repl_stop_gateway "$s"
  repl_start_gateway "$s"
done
fi
for k in 3 4 5 6 7 8 9; do repl_stop_gateway srv$k; done

# ---- whole file ----
random_image "$TESTDIR/big.raw" "$MIB"
df --server srv1 vdisk import big "$TESTDIR/big.raw" >/dev/null
layer=vdisks/big/0001.layer
size=$(stat -c %s "$store1/$layer")
url="http://127.0.0.1:${REPL_PORT[srv1]}/v1/stores/store/files/$layer"
curl_get () { curl -sf -H "Authorization: Bearer $REPL_TOKEN" -o "$TESTDIR/c.layer" "$url"; }
# curl + sync, timed in two parts: the sync alone is about what writing
# 2 GiB costs this disk, a floor for any copy that is durable when done.
curl_sync_secs () {
  local a b
  a=$(secs curl_get)
  b=$(secs sync "$TESTDIR/c.layer")
  t_flush=$(keep "$t_flush" "$b")
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a + b }'
}
t_repl=999 t_curl=999 t_curl_sync=999 t_flush=999 t_before=-
before=${BENCH_REPLICATOR_BEFORE:-}
[ -z "$before" ] || t_before=999
want whole || { sync_secs srv2 >/dev/null; t_repl=- t_curl=- t_curl_sync=- t_flush=-; }
want whole && for _ in $(seq "$ROUNDS"); do
  if [ -n "$before" ]; then
    empty_stores srv2
    t_before=$(keep "$t_before" "$(REPLICATOR=$before sync_secs srv2)")
  fi
  empty_stores srv2
  t_repl=$(keep "$t_repl" "$(sync_secs srv2)")
  rm -f "$TESTDIR/c.layer"; sync
  t_curl=$(keep "$t_curl" "$(secs curl_get)")
  rm -f "$TESTDIR/c.layer"; sync
  curl_sync_secs >"$TESTDIR/cs.time"
  t_curl_sync=$(keep "$t_curl_sync" "$(cat "$TESTDIR/cs.time")")
done
rm -f "$TESTDIR/c.layer"
repl_identical srv1 srv2

# ---- delta: a merge that changed 1% of the 64 KiB blocks ----
t_delta=- t_rdiff=- t_rdiff_sync=- our_wire=- rs_wire=- sig_len=0 delta_len=0
if want delta; then
blocks=$((MIB * 16))                   # 64 KiB blocks
changed=$((blocks / 100))
df --server srv1 version new big >/dev/null
NBDKIT_VERBOSE= start_nbdkit server=srv1
/usr/bin/nbdsh -u "$(nbd_uri edit/big)" -c "
import os, random
random.seed(7)
for b in random.sample(range($blocks), $changed):
    h.pwrite(os.urandom(65536), b * 65536)
h.flush()" || fail "cannot write the new version"
stop_nbdkit
df --server srv1 version promote big 2 production >/dev/null
df --server srv1 version merge big >/dev/null
df --server srv1 version delete big 2 >/dev/null
new=vdisks/big/0003.layer
[ -e "$store1/$new" ] || fail "no merged base"
basis=$TESTDIR/srv2/$layer

cat >"$TESTDIR/rsyncd.conf" <<EOF
[src]
path = $store1/vdisks/big
read only = yes
use chroot = no
uid = root
gid = root
EOF
rport=$(free_tcp_port)
rsync --daemon --no-detach --port "$rport" --address 127.0.0.1 \
  --config "$TESTDIR/rsyncd.conf" --log-file "$TESTDIR/rsyncd.log" &
rpid=$!
cleanup_fn "kill $rpid 2>/dev/null; wait $rpid 2>/dev/null"
for _ in $(seq 50); do rsync "rsync://127.0.0.1:$rport/" >/dev/null 2>&1 && break; sleep 0.1; done
rsync_once () {
  mkdir -p "$TESTDIR/rs"
  cp --sparse=always "$basis" "$TESTDIR/rs/0003.layer"
  sync
  rsync --no-whole-file --stats "rsync://127.0.0.1:$rport/src/0003.layer" \
    "$TESTDIR/rs/0003.layer" >"$TESTDIR/rsync.stats"
  cmp "$TESTDIR/rs/0003.layer" "$store1/$new" || fail "rsync got another file"
}
rdiff_all () {
  rdiff signature "$basis" "$TESTDIR/sig" &&
    rdiff delta "$TESTDIR/sig" "$store1/$new" "$TESTDIR/delta" &&
    rdiff patch "$basis" "$TESTDIR/delta" "$TESTDIR/patched"
}
rdiff_all_sync () { rdiff_all && sync "$TESTDIR/patched"; }
rdiff_stages () {       # wall (user + system CPU) of each step
  local f='%e (%U + %S)'
  /usr/bin/time -f "$f" rdiff signature "$basis" "$TESTDIR/sig" 2>&1
  /usr/bin/time -f "$f" rdiff delta "$TESTDIR/sig" "$store1/$new" \
    "$TESTDIR/delta" 2>&1
  /usr/bin/time -f "$f" rdiff patch "$basis" "$TESTDIR/delta" \
    "$TESTDIR/patched" 2>&1
}
t_delta=999 t_rdiff=999 t_rdiff_sync=999
for _ in $(seq "$ROUNDS"); do
  rm -f "$TESTDIR/srv2/$new"; sync
  t=$(secs sync_json srv2)
  t_delta=$(keep "$t_delta" "$t")
  rm -f "$TESTDIR/sig" "$TESTDIR/delta" "$TESTDIR/patched"; sync
  t_rdiff=$(keep "$t_rdiff" "$(secs rdiff_all)")
  rm -f "$TESTDIR/sig" "$TESTDIR/delta" "$TESTDIR/patched"; sync
  t_rdiff_sync=$(keep "$t_rdiff_sync" "$(secs rdiff_all_sync)")
done
cmp "$TESTDIR/patched" "$store1/$new" || fail "rdiff patched another file"
# Where the time goes, one more round of each: the replicator's stages,
# the gateway's delta, rdiff's three steps.
rm -f "$TESTDIR/srv2/$new"; sync
/usr/bin/time -o "$TESTDIR/repl.time" -f '%e s (CPU %U + %S s)' \
  "$REPLICATOR" sync --farm "$TESTDIR/farm" --server srv2 --store store \
  --json --verbose >"$TESTDIR/srv2.json" 2>"$TESTDIR/srv2.err" ||
  fail "sync srv2 failed: $(cat "$TESTDIR/srv2.err")"
stages_repl=$(sed -n 's/.*debug: delta: [^:]*: \(signature.*\)/\1/p' "$TESTDIR/srv2.err" | tail -1)
stages_commit=$(sed -n 's/.*debug: delta: [^:]*: \(content hash.*\)/\1/p' "$TESTDIR/srv2.err" | tail -1)
stages_gw=$(sed -n 's/.*debug: delta: \([0-9]* bytes in [0-9]* ms.*\)/\1/p' \
  "$TESTDIR/gw-srv1.log" | tail -1)
rm -f "$TESTDIR/sig" "$TESTDIR/delta" "$TESTDIR/patched"; sync
stages_rdiff=$(rdiff_stages | tr '\n' ' ')
# CPU seconds in all: the replicator's run and the gateway's delta thread
# against rdiff's three steps (what a busy machine shares out).
cpu_repl=$(sed -n 's/.*(CPU \([0-9.]*\) + \([0-9.]*\) s)/\1 \2/p' "$TESTDIR/repl.time" |
  awk '{ print $1 + $2 }')
cpu_gw=$(sed -n 's/.*(CPU \([0-9]*\) ms)/\1/p' <<<"$stages_gw" | awk '{ print $1 / 1000 }')
cpu_rdiff=$(grep -o '([0-9.]* + [0-9.]*)' <<<"$stages_rdiff" | tr -d '()+' |
  awk '{ t += $1 + $2 } END { print t }')
cpu_ours=$(awk -v a="$cpu_repl" -v b="$cpu_gw" 'BEGIN { print a + b }')
delta_how=$(/usr/bin/python3 -c "
import json
t = [x for x in json.load(open('$TESTDIR/srv2.json'))['trees'] if x['tree'] == 'store'][0]
print([m['how'] for m in t['moved'] if m['path'] == '$new'][0])")
[ "$delta_how" = delta ] || fail "the merged base did not come as a delta"
repl_identical srv1 srv2
rsync_once
rs_sent=$(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' "$TESTDIR/rsync.stats" | tr -d ,)
rs_recv=$(sed -n 's/^Total bytes received: \([0-9,]*\).*/\1/p' "$TESTDIR/rsync.stats" | tr -d ,)
rs_wire=$((rs_sent + rs_recv))
our_wire=$(wire "$TESTDIR/srv2.json")
sig_len=$(stat -c %s "$TESTDIR/sig")
delta_len=$(stat -c %s "$TESTDIR/delta")
fi

echo
echo "diskfarm-replicator benchmark (best of $ROUNDS; loopback; indicative)"
printf '%-46s %10s %10s %8s\n' "case" "seconds" "MiB/s" "ratio"
printf '%-46s %10s %10s\n' "whole ${MIB} MiB layer: diskfarm-replicator" "$t_repl" "$(rate "$size" "$t_repl")"
printf '%-46s %10s %10s %8s\n' "  curl from the same gateway" "$t_curl" "$(rate "$size" "$t_curl")" "$(ratio "$t_curl" "$t_repl")"
printf '%-46s %10s %10s %8s\n' "  curl + sync" "$t_curl_sync" "$(rate "$size" "$t_curl_sync")" "$(ratio "$t_curl_sync" "$t_repl")"
printf '%-46s %10s %10s\n' "    of which the sync (what curl left dirty)" "$t_flush" "$(rate "$size" "$t_flush")"
[ -z "$before" ] ||
  printf '%-46s %10s %10s %8s\n' "  BENCH_REPLICATOR_BEFORE (curl/it)" "$t_before" "$(rate "$size" "$t_before")" "$(ratio "$t_curl" "$t_before")"
printf '%-46s %10s %10s\n' "merge, 1% of 64K blocks: replicator delta" "$t_delta" ""
printf '%-46s %10s %10s %8s\n' "  rdiff signature + delta + patch" "$t_rdiff" "" "$(ratio "$t_delta" "$t_rdiff")"
printf '%-46s %10s %10s %8s\n' "  rdiff ... + sync" "$t_rdiff_sync" "" "$(ratio "$t_delta" "$t_rdiff_sync")"
printf '%-46s %10s\n' "  bytes on the wire: diskfarm-replicator" "$our_wire"
printf '%-46s %10s %10s %8s\n' "  bytes on the wire: rsync --no-whole-file" "$rs_wire" "" "$(ratio "$our_wire" "$rs_wire")"
printf '%-46s %10s\n' "  rdiff: signature + delta bytes" "$((sig_len + delta_len))"
if want delta; then
  echo "delta stages, replicator: $(cat "$TESTDIR/repl.time")"
  echo "  $stages_repl"
  echo "  of which the commit: $stages_commit"
  echo "delta stages, source gateway: $stages_gw"
  echo "delta stages, rdiff signature, delta, patch: s (CPU user + system s):"
  echo "  $stages_rdiff"
  echo "CPU s in all: replicator + gateway $cpu_ours ($cpu_repl + $cpu_gw)," \
    "rdiff $cpu_rdiff, ratio $(ratio "$cpu_ours" "$cpu_rdiff")"
fi
want fanout && fan_table
echo
echo "ratios: curl/replicator (goal >= 0.9), replicator/rdiff (goal <= 1),"
echo "wire replicator/rsync (goal <= 1.1), 8 servers/1 server (goal <= 2)"
