#!/bin/bash
# The gateway side by side with its peers, in one run, over loopback:
#   1. a 2 GiB sealed layer downloaded whole with curl: the gateway vs
#      nginx (sendfile on) serving the same file (goal >= 0.95x);
#   2. 100 concurrent Range downloads of 16 MiB pieces (curl --parallel):
#      total time, the gateway vs nginx (goal <= 1.1x);
#   3. the delta endpoint on the 2 GiB layer against a basis with 1% of
#      its 64 KiB blocks changed, vs "rdiff delta" on the same pair
#      (goal <= 1.0x; deltas are not cached here: --delta-cache 0);
#   4. what publishing session figures costs nbdkit: fio 4 KiB random
#      reads with the plugin publishing and not (goal >= 0.98x).
#   meson test -C build --suite bench -v bench-gateway.sh
# Environment: BENCH_MIB (layer size), BENCH_ROUNDS, BENCH_FIO_SECS,
# BENCH_PARTS (default "http delta stats": 1 and 2, 3, 4), e.g.
#   BENCH_PARTS=stats BENCH_ROUNDS=10 meson test ... bench-gateway.sh
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/bench/bench-lib.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"
requires curl --version
requires nginx -v
requires rdiff --version
requires fio --enghelp=nbd

MIB=${BENCH_MIB:-2048}
ROUNDS=${BENCH_ROUNDS:-3}
FIO_SECS=${BENCH_FIO_SECS:-10}
PARTS=" ${BENCH_PARTS:-http delta stats} "
NBDKIT_VERBOSE=
part () {   # part NAME: is that part of the bench wanted?
  [[ $PARTS == *" $1 "* ]]
}

# ---- a 2 GiB sealed layer ----
make_farm
random_image "$TESTDIR/src.raw" "$MIB"
df vdisk import base "$TESTDIR/src.raw" >/dev/null
rm "$TESTDIR/src.raw"
make_token
start_gateway bench --delta-cache 0 --delta-jobs 1
store=$TESTDIR/farm/store
layer=$store/vdisks/base/0001.layer
bytes=$(stat -c %s "$layer")
gw_file=$GW_URL/v1/stores/store/files/vdisks/base/0001.layer

declare -A vals
median () {    # median KEY
  tr ' ' '\n' <<<"${vals[$1]}" | grep . | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
pratio () {    # pratio KEY_A KEY_B: median over rounds of A/B
  paste <(tr ' ' '\n' <<<"${vals[$1]}" | grep .) <(tr ' ' '\n' <<<"${vals[$2]}" | grep .) |
    awk '$2 > 0 { print $1 / $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'
}

# The gateway checks the layer's content hash once, in the background:
# measure after that.
if part http || part delta; then
  wait_for 600 "the layer check" sh -c "curl -sf -H 'Authorization: Bearer $TOKEN' \
    $GW_URL/v1/vdisks/base | jq -e '.versions[0].verified == \"ok\"'"
fi

if part http; then
  # nginx serving the store, sendfile on, one worker per core (its
  # workers run as another user: the store must be readable).
  chmod -R a+rX "$TESTDIR"
  nport=$(free_tcp_port)
  mkdir -p "$TESTDIR/nginx"
  cat >"$TESTDIR/nginx/nginx.conf" <<CONF
  daemon off;
  worker_processes auto;
  pid $TESTDIR/nginx/nginx.pid;
  error_log $TESTDIR/nginx/error.log;
  events { worker_connections 1024; }
  http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $TESTDIR/nginx;
    proxy_temp_path $TESTDIR/nginx;
    fastcgi_temp_path $TESTDIR/nginx;
    uwsgi_temp_path $TESTDIR/nginx;
    scgi_temp_path $TESTDIR/nginx;
    server {
      listen 127.0.0.1:$nport;
      root $store;
    }
  }
CONF
  nginx -c "$TESTDIR/nginx/nginx.conf" -p "$TESTDIR/nginx" &
  cleanup_fn "kill $! 2>/dev/null"
  ng_file=http://127.0.0.1:$nport/vdisks/base/0001.layer
  wait_for 10 nginx curl -sf -o /dev/null -r 0-0 "$ng_file"

  # ---- 1. whole downloads ----
  download () {   # download URL: seconds
    secs curl -sf -H "Authorization: Bearer $TOKEN" -o /dev/null "$1"
  }
  cat "$layer" >/dev/null          # both read from the page cache
  for _ in $(seq "$ROUNDS"); do
    vals[dl_gw]+=" $(rate "$bytes" "$(download "$gw_file")")"
    vals[dl_ng]+=" $(rate "$bytes" "$(download "$ng_file")")"
  done

  # ---- 2. 100 concurrent 16 MiB ranges ----
  ranges_cfg () {  # ranges_cfg URL: 100 transfers of distinct 16 MiB pieces
    local i piece=$((16 << 20)) n=$(( (bytes >> 24) < 100 ? (bytes >> 24) : 100 ))
    for i in $(seq 0 $((n - 1))); do
      [ "$i" -gt 0 ] && echo next
      echo "url = \"$1\""
      echo "header = \"Authorization: Bearer $TOKEN\""
      echo "range = \"$((i * piece))-$((i * piece + piece - 1))\""
      echo 'output = "/dev/null"'
      echo 'silent'
      echo 'fail'
    done
  }
  ranges_cfg "$gw_file" >"$TESTDIR/gw.cfg"
  ranges_cfg "$ng_file" >"$TESTDIR/ng.cfg"
  for _ in $(seq "$ROUNDS"); do
    vals[rg_gw]+=" $(secs curl --no-progress-meter -Z --parallel-max 100 --parallel-immediate -K "$TESTDIR/gw.cfg")"
    vals[rg_ng]+=" $(secs curl --no-progress-meter -Z --parallel-max 100 --parallel-immediate -K "$TESTDIR/ng.cfg")"
  done

fi

# ---- 3. delta vs rdiff ----
if part delta; then
  cp "$layer" "$TESTDIR/basis"
  blocks=$((bytes >> 16))
  for _ in $(seq $((blocks / 100))); do
    dd if=/dev/urandom of="$TESTDIR/basis" bs=64K count=1 conv=notrunc \
      seek=$(( (RANDOM * 32768 + RANDOM) % blocks )) status=none
  done
  rdiff -f signature "$TESTDIR/basis" "$TESTDIR/basis.sig"
  for _ in $(seq "$ROUNDS"); do
    vals[dx_gw]+=" $(secs curl -sf -H "Authorization: Bearer $TOKEN" \
      --data-binary @"$TESTDIR/basis.sig" -o "$TESTDIR/gw.delta" \
      "$GW_URL/v1/stores/store/delta/vdisks/base/0001.layer")"
    vals[dx_rd]+=" $(secs rdiff -f delta "$TESTDIR/basis.sig" "$layer" "$TESTDIR/rd.delta")"
  done
  rdiff -f patch "$TESTDIR/basis" "$TESTDIR/gw.delta" "$TESTDIR/patched"
  cmp -s "$TESTDIR/patched" "$layer" || fail "the gateway's delta does not patch right"
  rm -f "$TESTDIR/patched" "$TESTDIR/basis"
fi

# ---- 4. publishing session figures ----
if part stats; then
  df device add bench --mac 52:54:00:bb:00:00 --vdisk base >/dev/null
  fio_run () {   # fio_run URI SECONDS: into $TESTDIR/fio.json
    fio --name=b --ioengine=nbd --uri="$1" --rw=randread --bs=4k --iodepth=32 \
        --size="${MIB}M" --time_based --runtime="$2" \
        --norandommap --randrepeat=0 --output-format=json \
        --output="$TESTDIR/fio.json" >/dev/null 2>&1
  }
  cpu_ticks () {   # cpu_ticks PID: user + system time of all its threads
    awk '{ print $14 + $15 }' "/proc/$1/stat"
  }
  # Besides the IOPS (which a busy machine blurs), nbdkit's CPU time per
  # request: what publishing adds to each request, whatever else runs.
  fio_round () {   # fio_round on|off ROUND
    local t0 t1 ios
    if [ "$1" = on ]; then
      start_nbdkit stats-dir="$TESTDIR/stats"
      wait_for 10 "nbdkit's table" test -e "$TESTDIR/stats/nbdkit-$NBD_PID.stats"
    else
      start_nbdkit stats=off
    fi
    t0=$(cpu_ticks "$NBD_PID")
    fio_run "$(nbd_uri "dev/bench@$1$2")" "$FIO_SECS" || fail "fio: $(tail "$TESTDIR/fio.json")"
    t1=$(cpu_ticks "$NBD_PID")
    ios=$(jq '.jobs[0].read.total_ios' "$TESTDIR/fio.json")
    vals[st_$1]+=" $(jq '.jobs[0].read.iops | floor' "$TESTDIR/fio.json")"
    vals[cpu_$1]+=" $(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$ios" \
      'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
    stop_nbdkit
  }
  # Warm the page cache first, unmeasured.
  start_nbdkit stats=off
  fio_run "$(nbd_uri dev/bench@warm)" 3 || fail "fio: $(tail "$TESTDIR/fio.json")"
  stop_nbdkit
  # Which goes first alternates, so that neither gets the warmer page
  # cache or the quieter moment every time.
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
      fio_round on "$round"; fio_round off "$round"
    else
      fio_round off "$round"; fio_round on "$round"
    fi
  done
fi

# ---- the table ----
printf '\n%s MiB sealed layer over loopback; %s rounds, medians; ratios: median of the ratios within a round\n' \
  "$((bytes >> 20))" "$ROUNDS"
printf '%-56s %14s %7s %s\n' measurement value ratio goal
if part http; then
  printf '%-56s %8s MiB/s %6sx %s\n' "whole download, curl: gateway" "$(median dl_gw)" \
    "$(pratio dl_gw dl_ng)" ">=0.95 (vs nginx)"
  printf '%-56s %8s MiB/s\n' "whole download, curl: nginx sendfile" "$(median dl_ng)"
  printf '%-56s %10s s %6sx %s\n' "100 concurrent 16 MiB ranges: gateway" "$(median rg_gw)" \
    "$(pratio rg_gw rg_ng)" "<=1.1 (time vs nginx)"
  printf '%-56s %10s s\n' "100 concurrent 16 MiB ranges: nginx" "$(median rg_ng)"
fi
if part delta; then
  printf '%-56s %10s s %6sx %s\n' "delta, 1% of 64K blocks changed: gateway POST" "$(median dx_gw)" \
    "$(pratio dx_gw dx_rd)" "<=1.0 (time vs rdiff)"
  printf '%-56s %10s s\n' "delta, same pair: rdiff delta" "$(median dx_rd)"
  printf '%-56s %10s bytes (rdiff: %s)\n' "delta size: gateway" "$(stat -c %s "$TESTDIR/gw.delta")" \
    "$(stat -c %s "$TESTDIR/rd.delta")"
fi
if part stats; then
  printf '%-56s %9s IOPS %6sx %s\n' "4K randread qd32, plugin publishing figures" "$(median st_on)" \
    "$(pratio st_on st_off)" ">=0.98 (vs not publishing)"
  printf '%-56s %9s IOPS\n' "4K randread qd32, plugin not publishing" "$(median st_off)"
  printf '  rounds (IOPS): publishing%s; not publishing%s\n' "${vals[st_on]}" "${vals[st_off]}"
  printf '%-56s %10s us %6sx %s\n' "nbdkit CPU per request, publishing" "$(median cpu_on)" \
    "$(pratio cpu_on cpu_off)" "(1.00: no cost)"
  printf '%-56s %10s us\n' "nbdkit CPU per request, not publishing" "$(median cpu_off)"
fi
