#!/bin/bash
# diskfarm-gateway attach, side by side with nbdkit in one run:
#   1. fio 4 KiB random read, iodepth 32 (nbd engine), of a device whose
#      writes stay on the client (write cache "device"): directly from
#      the plugin's nbdkit, through the attach's NBD socket with no read
#      cache (cold: every read goes to the server), through it with
#      a warm read cache (the disk read once before), and with a read
#      cache empty at the start of the run (what a miss costs).  The
#      servers listen on unix sockets for these, which puts them on the
#      client's host; then direct and cold again with the servers over
#      TCP (127.0.0.1), as a farm's clients reach them.  Then direct and
#      cold, both ways, with the client and the server on a core each
#      (fio and the attach on CPU 0, the servers on CPU 1): the attach
#      is a client-side program, and in a farm nbdkit runs on another
#      machine.  Unpinned, on a 2-core machine, every microsecond the
#      attach spends is taken from fio's and nbdkit's share of the same
#      two cores (docs/performance.md).
#   2. the failover pause: the serving nbdkit SIGKILLed under fio
#      (servers on unix sockets), and its network cut with --io-timeout 2
#      (servers in network namespaces), as the attach logs it.
#   meson test -C build --suite bench -v bench-gateway-attach.sh
# Environment: BENCH_MIB (image size), BENCH_FIO_SECS, BENCH_ROUNDS,
# BENCH_FAILOVERS; BENCH_BASELINE_GATEWAY=PATH: the diskfarm-gateway of
# another build, measured cold in the same rounds (before/after).
# Beside IOPS, the CPU time per request of fio and of the serving
# processes together: on 2 shared cores, what decides the ratio on a
# quiet machine, and less at the mercy of the machine's load.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
. "$DISKFARM_SRCDIR/tests/lib/attach.sh"
need nbdkit --version
need fio --enghelp=nbd

MIB=${BENCH_MIB:-1024}
FIO_SECS=${BENCH_FIO_SECS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
FAILOVERS=${BENCH_FAILOVERS:-3}
NBDKIT_VERBOSE=

make_farm
random_image "$TESTDIR/src.raw" "$MIB"
df vdisk import base "$TESTDIR/src.raw" >/dev/null
df device add pc1 --mac 52:54:00:bb:00:01 --vdisk base --cache device
add_servers srv2
start_server srv1 session-linger=0
start_server srv2 session-linger=0
SERVERS=unix:$TESTDIR/srv1.sock,unix:$TESTDIR/srv2.sock
start_tcp_server tcp1 srv1 session-linger=0
start_tcp_server tcp2 srv2 session-linger=0
TCP_SERVERS=127.0.0.1:${TCP_PORT[tcp1]},127.0.0.1:${TCP_PORT[tcp2]}

declare -A vals
TICK=$(getconf CLK_TCK)
cpu_ticks () {  # cpu_ticks PID...: user + system ticks of the processes
  local p t=0 f
  for p in "$@"; do
    read -ra f <"/proc/$p/stat"
    t=$((t + f[13] + f[14]))
  done
  echo $t
}
# measure KEY URI [ATTACH_PID]: fio's IOPS into vals[KEY], the CPU time
# per request (us) of fio, the attach and the servers together into
# vals[KEY_cpu], and of each into vals[KEY_fio], [KEY_att], [KEY_srv].
measure () {
  local key=$1 uri=$2 a0=0 a1=0 s0 s1 w0 w1 iops fio att srv
  s0=$(cpu_ticks "${SRV[@]}")
  [ -z "${3:-}" ] || a0=$(cpu_ticks "$3")
  w0=$EPOCHREALTIME
  ${PIN_CLIENT:+taskset -c "$PIN_CLIENT"} \
  fio --name=b --ioengine=nbd --uri="$uri" --rw=randread --bs=4k --iodepth=32 \
      --size="${MIB}M" --time_based --runtime="$FIO_SECS" --ramp_time=2 \
      --norandommap --randrepeat=0 --output-format=json \
      --output="$TESTDIR/fio.json" >/dev/null 2>&1 || {
    vals[$key]+=" 0"
    return
  }
  w1=$EPOCHREALTIME
  s1=$(cpu_ticks "${SRV[@]}")
  [ -z "${3:-}" ] || a1=$(cpu_ticks "$3")
  # The attach and the servers: their CPU over ramp and run, per request
  # at the measured rate over the same time.
  read -r iops fio att srv < <(/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
iops = j["read"]["iops"]
fio = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000
n = max(iops * (float(sys.argv[5]) - float(sys.argv[4])), 1)
tick = int(sys.argv[6])
print(int(iops), "%.1f" % (fio / max(j["read"]["total_ios"], 1) * 1e6),
      "%.1f" % (int(sys.argv[2]) / tick / n * 1e6),
      "%.1f" % (int(sys.argv[3]) / tick / n * 1e6))' "$TESTDIR/fio.json" \
    $((a1 - a0)) $((s1 - s0)) "$w0" "$w1" "$TICK")
  vals[$key]+=" $iops"
  vals[${key}_fio]+=" $fio"
  vals[${key}_att]+=" $att"
  vals[${key}_srv]+=" $srv"
  vals[${key}_cpu]+=" $(awk -v a="$fio" -v b="$att" -v c="$srv" \
                        'BEGIN { printf "%.1f", a + b + c }')"
}
median () {    # median KEY
  tr ' ' '\n' <<<"${vals[$1]}" | grep . | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
maxof () {
  tr ' ' '\n' <<<"${vals[$1]}" | grep . | sort -n | tail -1
}
pratio () {    # pratio KEY_A KEY_B: median over rounds of A/B
  paste <(tr ' ' '\n' <<<"${vals[$1]}" | grep .) \
        <(tr ' ' '\n' <<<"${vals[$2]}" | grep .) |
    awk '$2 > 0 { print $1 / $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'
}

# ---- 1. 4K random read, qd32 ----
# A warm read cache: the whole disk read through it once.
start_attach warm dev/pc1@warm --servers "$SERVERS" \
  --nbd-socket "$TESTDIR/warm.sock" --overlay "$TESTDIR/warm.layer" \
  --read-cache "$TESTDIR/rcache" --read-cache-size $((MIB * 2))M
nbdcopy "nbd+unix:///?socket=$TESTDIR/warm.sock" null:
start_attach cold dev/pc1@cold --servers "$SERVERS" \
  --nbd-socket "$TESTDIR/cold.sock" --overlay "$TESTDIR/cold.layer"
if [ -n "${BENCH_BASELINE_GATEWAY:-}" ]; then
  GATEWAY=$BENCH_BASELINE_GATEWAY start_attach base dev/pc1@base \
    --servers "$SERVERS" --nbd-socket "$TESTDIR/base.sock" \
    --overlay "$TESTDIR/base.layer"
fi
start_attach tcold dev/pc1@tcold --servers "$TCP_SERVERS" \
  --nbd-socket "$TESTDIR/tcold.sock" --overlay "$TESTDIR/tcold.layer"
SRV=("${SERVER_PID[srv1]}" "${SERVER_PID[srv2]}" "${SERVER_PID[tcp1]}"
     "${SERVER_PID[tcp2]}")
# Rounds alternate the three, so that the machine's drift hits each.
for round in $(seq "$ROUNDS"); do
  measure direct "nbd+unix:///dev/pc1@direct?socket=$TESTDIR/srv1.sock"
  measure cold "nbd+unix:///?socket=$TESTDIR/cold.sock" "${ATTACH_PID[cold]}"
  [ -z "${BENCH_BASELINE_GATEWAY:-}" ] ||
    measure base "nbd+unix:///?socket=$TESTDIR/base.sock" "${ATTACH_PID[base]}"
  measure warm "nbd+unix:///?socket=$TESTDIR/warm.sock" "${ATTACH_PID[warm]}"
  measure tcp_direct "nbd://127.0.0.1:${TCP_PORT[tcp1]}/dev/pc1@direct"
  measure tcp_cold "nbd+unix:///?socket=$TESTDIR/tcold.sock" \
    "${ATTACH_PID[tcold]}"
  # A read cache empty at the start: the misses' cost (lookup, fill).
  start_attach empty$round dev/pc1@empty$round --servers "$SERVERS" \
    --nbd-socket "$TESTDIR/empty.sock" --overlay "$TESTDIR/empty$round.layer" \
    --read-cache "$TESTDIR/rcache-empty$round" \
    --read-cache-size $((MIB * 2))M
  measure empty "nbd+unix:///?socket=$TESTDIR/empty.sock" \
    "${ATTACH_PID[empty$round]}"
  stop_attach empty$round
  rm -rf "$TESTDIR/rcache-empty$round"
done
# Client and server on a core each.
pin () {        # pin CPUS PID...: every thread of the processes
  local p
  for p in "${@:2}"; do taskset -a -p -c "$1" "$p" >/dev/null; done
}
if [ "$(nproc)" -ge 2 ]; then
  pin 1 "${SRV[@]}"
  pin 0 "${ATTACH_PID[cold]}" "${ATTACH_PID[tcold]}"
  for round in $(seq "$ROUNDS"); do
    PIN_CLIENT=0 measure split_direct \
      "nbd+unix:///dev/pc1@direct?socket=$TESTDIR/srv1.sock"
    PIN_CLIENT=0 measure split_cold "nbd+unix:///?socket=$TESTDIR/cold.sock" \
      "${ATTACH_PID[cold]}"
    PIN_CLIENT=0 measure split_tcp_direct \
      "nbd://127.0.0.1:${TCP_PORT[tcp1]}/dev/pc1@direct"
    PIN_CLIENT=0 measure split_tcp_cold \
      "nbd+unix:///?socket=$TESTDIR/tcold.sock" "${ATTACH_PID[tcold]}"
  done
  pin "0-$(($(nproc) - 1))" "${SRV[@]}" "${ATTACH_PID[cold]}" \
    "${ATTACH_PID[tcold]}"
fi
[ -z "${BENCH_BASELINE_GATEWAY:-}" ] || stop_attach base
stop_attach cold
stop_attach tcold
stop_attach warm
kill_server tcp1 TERM
kill_server tcp2 TERM
SRV=("${SERVER_PID[srv1]}" "${SERVER_PID[srv2]}")

# ---- 2. failover pauses ----
pause_of () {   # pause_of NAME: the last pause the attach logged (s)
  attach_log "$1" | sed -n 's/.*after a pause of \([0-9.]*\) s.*/\1/p' |
    tail -1
}
# await_failover NAME N: until the attach has logged N failovers.
failovers_done () { [ "$(attach_log "$1" | grep -c "now served by")" -ge "$2" ]; }

reader () {     # reader URI: fio reading until it is killed
  fio --name=r --ioengine=nbd --uri="$1" --rw=randread --bs=4k --iodepth=32 \
      --size="${MIB}M" --time_based --runtime=600 --norandommap \
      --output="$TESTDIR/reader.out" >/dev/null 2>&1 &
  READER=$!
  cleanup_fn "kill $READER 2>/dev/null"
}

start_attach ko dev/pc1@ko --servers "$SERVERS" \
  --nbd-socket "$TESTDIR/ko.sock" --overlay "$TESTDIR/ko.layer"
reader "nbd+unix:///?socket=$TESTDIR/ko.sock"
for n in $(seq "$FAILOVERS"); do
  victim=srv$(( (n - 1) % 2 + 1 ))
  sleep 1       # under way (a measurement, not an assertion)
  kill_server "$victim"
  wait_for 60 "failover $n" failovers_done ko "$n"
  vals[kill]+=" $(pause_of ko)"
  start_server "$victim" session-linger=0
done
kill "$READER" 2>/dev/null; wait "$READER" 2>/dev/null || true
stop_attach ko

start_netns_servers
start_attach cut dev/pc1@cut --farm "$TESTDIR/farm" --io-timeout 2 \
  --nbd-socket "$TESTDIR/cut.sock" --overlay "$TESTDIR/cut.layer"
reader "nbd+unix:///?socket=$TESTDIR/cut.sock"
for n in $(seq "$FAILOVERS"); do
  link=$(( (n - 1) % 2 + 1 ))
  sleep 1
  cut_link "$link"
  wait_for 60 "network cut $n" failovers_done cut "$n"
  vals[cut]+=" $(pause_of cut)"
  cut_link "$link" up
done
kill "$READER" 2>/dev/null; wait "$READER" 2>/dev/null || true
stop_attach cut

# ---- the table ----
printf '\n%s MiB random image; device with write cache "device" (overlay on the client)\n' "$MIB"
printf '%-50s %12s %6s %7s %s\n' measurement value us/req ratio goal
row () {       # row LABEL KEY [RATIO GOAL]
  printf '%-50s %7s IOPS %6s %7s %s\n' "$1" "$(median "$2")" \
    "$(median "${2}_cpu")" "${3:+${3}x}" "${4:-}"
}
row "4K randread qd32: nbdkit (plugin), directly" direct
row "4K randread qd32: through the attach, cold" cold \
  "$(pratio cold direct)" ">=0.8 (vs direct)"
[ -z "${BENCH_BASELINE_GATEWAY:-}" ] ||
  row "4K randread qd32: the baseline build's attach, cold" base \
    "$(pratio base direct)" "(vs direct)"
row "4K randread qd32: through the attach, warm read cache" warm \
  "$(pratio warm direct)" ">=1.5 (vs direct)"
row "4K randread qd32: the attach, read cache empty at start" empty \
  "$(pratio empty direct)" "(vs direct)"
row "servers over TCP: nbdkit directly" tcp_direct
row "servers over TCP: through the attach, cold" tcp_cold \
  "$(pratio tcp_cold tcp_direct)" ">=0.8 (vs direct)"
if [ -n "${vals[split_cold]:-}" ]; then
  row "client and server on a core each: nbdkit directly" split_direct
  row "client and server on a core each: the attach, cold" split_cold \
    "$(pratio split_cold split_direct)" "(vs direct)"
  row "a core each, servers over TCP: nbdkit directly" split_tcp_direct
  row "a core each, servers over TCP: the attach, cold" split_tcp_cold \
    "$(pratio split_tcp_cold split_tcp_direct)" "(vs direct)"
fi
printf '(us/req: CPU time per request of fio, the attach and the servers together;\n'
printf ' each:'
for k in direct cold ${BENCH_BASELINE_GATEWAY:+base} warm empty tcp_direct \
         tcp_cold ${vals[split_cold]:+split_direct split_cold split_tcp_direct \
                   split_tcp_cold}; do
  printf ' %s %s+%s+%s' "$k" "$(median ${k}_fio)" "$(median ${k}_att)" \
    "$(median ${k}_srv)"
done
printf ')\n'
printf '(IOPS: median of %s rounds; ratios: median of the ratios within a round)\n' "$ROUNDS"
printf '%-56s %7s s (max %s s) %s\n' "failover pause, server SIGKILLed" \
  "$(median kill)" "$(maxof kill)" "goal <1 s"
printf '%-56s %7s s (max %s s) %s\n' "failover pause, network cut, --io-timeout 2" \
  "$(median cut)" "$(maxof cut)" "goal <3 s"
printf '(pauses: median of %s failovers each, as the attach logs them: from the\n' "$FAILOVERS"
printf ' oldest request left unanswered to the next server serving)\n'
