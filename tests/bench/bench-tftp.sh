#!/bin/bash
# TFTP throughput, side by side with tftpd-hpa (in.tftpd), over loopback:
#   1. one 32 MiB file at blksize 1468 with curl, each server;
#   2. the same at blksize 512 (65536+ blocks: rollover) with curl;
#   3. tftp-get (diskfarm's own C client, the only one here that speaks
#      RFC 7440) at windowsize 1 against each server, and at windowsize
#      16 against ours (tftpd-hpa 5.2 does not grant windowsize);
#   4. 100 concurrent curl clients fetching a 4 MiB file: total time,
#      all byte-exact, and the server's peak RSS.
# Timings never fail the run; wrong data does.
#   meson test -C build --suite bench -v bench-tftp.sh
# Environment: BENCH_TFTP_MIB (default 32), BENCH_CLIENTS (100),
# BENCH_RUNS (best of, default 3).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
requires curl --version
requires in.tftpd -V
requires_root                   # in.tftpd -s chroots

MIB=${BENCH_TFTP_MIB:-32}
CLIENTS=${BENCH_CLIENTS:-100}
RUNS=${BENCH_RUNS:-3}
SERVE="$DISKFARM_BUILD/bootsvc/tftp/tftp-serve"
GET="$DISKFARM_BUILD/bootsvc/tftp/tftp-get"
root="$TESTDIR/root"
mkdir -p "$root" "$TESTDIR/out"
chmod 755 "$TESTDIR" "$root"    # in.tftpd reads as user tftp
head -c $((MIB << 20)) /dev/urandom > "$root/big"
head -c $((4 << 20)) /dev/urandom > "$root/small"
chmod 644 "$root"/*
bytes=$((MIB << 20))

free_port () {
  /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

"$SERVE" -l 127.0.0.1:0 -p "$TESTDIR/ours.port" -m 1024 "$root" 2>"$TESTDIR/ours.log" &
OURS_PID=$!
cleanup_fn "kill $OURS_PID 2>/dev/null"
HPA_PORT=$(free_port)
in.tftpd -L -s "$root" -a "127.0.0.1:$HPA_PORT" 2>"$TESTDIR/hpa.log" &
HPA_PID=$!
cleanup_fn "kill $HPA_PID 2>/dev/null"
for _ in $(seq 100); do [ -s "$TESTDIR/ours.port" ] && break; sleep 0.05; done
OURS_PORT=$(cat "$TESTDIR/ours.port")
sleep 0.3
kill -0 $HPA_PID 2>/dev/null || fail "in.tftpd did not start: $(cat "$TESTDIR/hpa.log")"

# best CMD...: the best wall time of RUNS runs, each checked with cmp
# against the file the command fetched into $TESTDIR/out/x.
best () {
  local b="" t i
  for i in $(seq "$RUNS"); do
    rm -f "$TESTDIR/out/x"
    t=$(secs "$@")
    cmp -s "$root/$FILE" "$TESTDIR/out/x" || fail "wrong data from: $*"
    b=$(awk -v a="$b" -v t="$t" 'BEGIN { if (a == "" || t + 0 < a + 0) print t; else print a }')
  done
  echo "$b"
}

curl_get () {   # curl_get PORT BLKSIZE
  curl -sSf --tftp-blksize "$2" -o "$TESTDIR/out/x" "tftp://127.0.0.1:$1/$FILE"
}
tget () {       # tget PORT BLKSIZE WINDOWSIZE
  "$GET" -b "$2" -w "$3" -o "$TESTDIR/out/x" 127.0.0.1 "$1" "$FILE" 2>/dev/null
}

FILE=big
c1468_ours=$(best curl_get "$OURS_PORT" 1468)
c1468_hpa=$(best curl_get "$HPA_PORT" 1468)
c512_ours=$(best curl_get "$OURS_PORT" 512)
c512_hpa=$(best curl_get "$HPA_PORT" 512)
g1_ours=$(best tget "$OURS_PORT" 1468 1)
g1_hpa=$(best tget "$HPA_PORT" 1468 1)
g16_ours=$(best tget "$OURS_PORT" 1468 16)
# Check what tftpd-hpa granted: no windowsize in its OACK means 1.
"$GET" -b 1468 -w 16 -o /dev/null 127.0.0.1 "$HPA_PORT" big 2>"$TESTDIR/hpa-w.err"
hpa_window=$(sed -n 's/.*windowsize \([0-9]*\).*/\1/p' "$TESTDIR/hpa-w.err")

# storm PORT PID: CLIENTS concurrent curls; prints "SECONDS PEAK_KIB".
storm () {
  local port=$1 pid=$2 start end peak
  start=$(date +%s%N)
  peak=$(peak_rss "$pid" bash -c '
    for i in $(seq '"$CLIENTS"'); do
      curl -sSf --tftp-blksize 1468 -o "'"$TESTDIR"'/out/s$i" \
        "tftp://127.0.0.1:'"$port"'/small" &
    done
    wait')
  end=$(date +%s%N)
  for i in $(seq "$CLIENTS"); do
    cmp -s "$root/small" "$TESTDIR/out/s$i" || fail "client $i got wrong data from port $port"
  done
  rm -f "$TESTDIR"/out/s*
  awk -v ns=$((end - start)) -v p="$peak" 'BEGIN { printf "%.2f %.1f", ns / 1e9, p / 1024 }'
}
read -r s_ours m_ours <<<"$(storm "$OURS_PORT" "$OURS_PID")"
read -r s_hpa m_hpa <<<"$(storm "$HPA_PORT" "$HPA_PID")"

printf '\nTFTP over loopback, %s MiB random file, best of %s; 2 cores\n' "$MIB" "$RUNS"
printf '%-62s %10s %8s\n' measurement MiB/s "vs hpa"
row () {   # row LABEL SECONDS [PEER_SECONDS]
  printf '%-62s %10s %8s\n' "$1" "$(rate $bytes "$2")" \
    "${3:+$(ratio "$3" "$2")x}"
}
row "curl, blksize 1468: diskfarm tftp" "$c1468_ours" "$c1468_hpa"
row "curl, blksize 1468: tftpd-hpa" "$c1468_hpa"
row "curl, blksize 512 (rollover): diskfarm tftp" "$c512_ours" "$c512_hpa"
row "curl, blksize 512 (rollover): tftpd-hpa" "$c512_hpa"
row "tftp-get, blksize 1468, windowsize 1: diskfarm tftp" "$g1_ours" "$g1_hpa"
row "tftp-get, blksize 1468, windowsize 1: tftpd-hpa" "$g1_hpa"
row "tftp-get, blksize 1468, windowsize 16: diskfarm tftp" "$g16_ours" "$g1_hpa"
printf '%-62s %10s\n' "tftp-get asking windowsize 16 from tftpd-hpa: granted" "${hpa_window:-1}"
printf '%-62s %8s s %6s MiB\n' "$CLIENTS concurrent curl x 4 MiB, all byte-exact: diskfarm tftp" \
  "$s_ours" "$m_ours"
printf '%-62s %8s s %6s MiB\n' "$CLIENTS concurrent curl x 4 MiB, all byte-exact: tftpd-hpa" \
  "$s_hpa" "$m_hpa"
printf '(tftp-get is bootsvc/tftp/tftp-get.c: curl and tftp-hpa do not speak RFC 7440;\n'
printf ' "vs hpa" compares with tftpd-hpa under the same client and blksize,\n'
printf ' windowsize 16 with tftpd-hpa at windowsize 1; RSS: peak of the server\n'
printf ' and its children)\n'
