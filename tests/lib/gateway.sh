# diskfarm — helpers for the gateway tests.  Source it after
# tests/functions.sh:
#   . "$DISKFARM_SRCDIR/tests/lib/gateway.sh"
# A gateway listens on 127.0.0.1 on a free port; $GW_URL is its base URL,
# $TOKEN the farm's token.

GATEWAY="$DISKFARM_BUILD/gateway/diskfarm-gateway"

# gateway_setting KEY VALUE: sets a [gateway] key of the test's farm.conf.
gateway_setting () {
  local conf="$TESTDIR/farm/farm.conf"
  grep -q '^\[gateway\]$' "$conf" || printf '\n[gateway]\n' >>"$conf"
  sed -i "/^\[gateway\]\$/,/^\[/{/^$1 = /d}" "$conf"
  sed -i "/^\[gateway\]\$/a $1 = $2" "$conf"
}

# make_token: a random token in farm/gateway.token (mode 600), named by
# [gateway] token-file; sets $TOKEN.
make_token () {
  TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077 && echo "$TOKEN" >"$TESTDIR/farm/gateway.token")
  gateway_setting token-file gateway.token
}

# start_gateway NAME [ARGS...]: runs diskfarm-gateway with the test's
# farm (and ARGS), logging to $TESTDIR/gateway-NAME.log, and waits until
# it listens; sets $GW_URL, $GW_PORT and $GW_PID.  Stopped at exit.
start_gateway () {
  local name=$1 log="$TESTDIR/gateway-$1.log" port= scheme=http i
  shift
  case " $* " in *" --tls-cert "*) scheme=https ;; esac
  : >"$log"         # the child opens it after the loop below first reads it
  "$GATEWAY" --farm "$TESTDIR/farm" --listen 127.0.0.1:0 \
    --stats-dir "$TESTDIR/stats" --cache-dir "$TESTDIR" "$@" >"$log" 2>&1 &
  GW_PID=$!
  GW_RUNNING+=("$GW_PID:$log")
  cleanup_fn "stop_gateway $GW_PID"
  for i in $(seq 200); do
    port=$(sed -n 's/^.* over HTTPS* on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$log" >&2; fail "gateway $name exited"; }
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$log" >&2; fail "gateway $name did not start"; }
  GW_PORT=$port
  GW_URL=$scheme://127.0.0.1:$port
}

GW_RUNNING=()

# stop_gateway PID: SIGTERM; it must be gone within 10 s, with status 0
# (a sanitizer's report at exit makes it non-zero).
stop_gateway () {
  local i status=0
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 200); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$1" 2>/dev/null; then
    kill -KILL "$1" 2>/dev/null
    echo "gateway $1 did not stop on SIGTERM" >&2
    return 1
  fi
  wait "$1" 2>/dev/null || status=$?
  [ "$status" = 0 ] || echo "gateway $1 exited with status $status" >&2
  return "$status"
}

# stop_gateways: stops every gateway the test started, and fails unless
# each stopped cleanly without a sanitizer's report in its log.
stop_gateways () {
  local g pid log
  for g in "${GW_RUNNING[@]}"; do
    pid=${g%%:*}
    log=${g#*:}
    kill -0 "$pid" 2>/dev/null || continue
    stop_gateway "$pid" || fail "gateway $pid: $(tail -20 "$log")"
    ! grep -q "Sanitizer\|runtime error" "$log" || fail "$(cat "$log")"
  done
}

# gw PATH [CURL ARGS...]: GET with the token; body on stdout, the status
# in $TESTDIR/code, the headers in $TESTDIR/headers.
gw () {
  local path=$1
  shift
  curl -sS -o - -D "$TESTDIR/headers" -w '%{stderr}%{http_code}' \
    -H "Authorization: Bearer $TOKEN" "$@" "$GW_URL$path" 2>"$TESTDIR/code"
}

# code: the status of the last gw call.
code () {
  tail -c 3 "$TESTDIR/code"
}

# header NAME: a header of the last gw answer.
header () {
  tr -d '\r' <"$TESTDIR/headers" | sed -n "s/^$1: //Ip" | tail -1
}

# expect_code WANT PATH [CURL ARGS...]: the answer's status is WANT.
expect_code () {
  local want=$1 path=$2
  shift 2
  gw "$path" "$@" >"$TESTDIR/body"
  [ "$(code)" = "$want" ] ||
    fail "$path: HTTP $(code), expected $want: $(head -c 300 "$TESTDIR/body")"
}

# The content hash of version N of vDisk V as in its manifest (64 hex).
manifest_hash () {
  sed -n "/^\[version $2\]\$/,/^\[/s/^hash = sha256://p" \
    "${3:-$TESTDIR/farm/store}/vdisks/$1/vdisk.conf"
}

# jint FILE PYTHON-EXPR: a value of a JSON document (d) exactly (jq
# rounds integers beyond 2^53, like nanosecond times, to doubles).
jint () {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
