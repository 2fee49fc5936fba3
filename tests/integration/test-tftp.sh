#!/bin/bash
# The boot service's TFTP module with real clients over loopback: curl
# (tftp://, blksize, tsize), tftp-hpa, and tftp-get for windowsize.  Files
# around the block size and past 65535 blocks (block numbers roll over at
# blksize 512) arrive byte-exact; traversal attempts, symlinks out of the
# root, NUL bytes, overlong names and writes are refused and logged; 100
# concurrent clients all complete; the per-client rate limit holds.
. "$DISKFARM_SRCDIR/tests/functions.sh"

requires curl --version
curl --version | grep -qw tftp || skip "curl without tftp support"
requires tftp -V                # tftp-hpa's client
requires /usr/bin/python3 -c 'import socket'
SERVE="$DISKFARM_BUILD/bootsvc/tftp/tftp-serve"
GET="$DISKFARM_BUILD/bootsvc/tftp/tftp-get"
[ -x "$SERVE" ] && [ -x "$GET" ] || fail "tftp-serve/tftp-get not built"

root="$TESTDIR/root"
mkdir -p "$root/sub" "$TESTDIR/out"
: > "$root/empty"
for size in 511 512 513 1048576; do
  head -c $size /dev/urandom > "$root/f$size"
done
cp "$root/f513" "$root/sub/nested"
# 33 MiB + 7 bytes: 67585 blocks of 512, so the block number rolls over.
head -c $((33 * 1048576 + 7)) /dev/urandom > "$root/big"
ln -s /etc/passwd "$root/passwd-link"
ln -s /etc "$root/etc-link"
ln -s f511 "$root/inner-link"

# start_server NAME [OPTIONS]: tftp-serve on a free port; sets $PORT
# and $LOG, stopped at exit.
start_server () {
  local name=$1 pid
  shift
  LOG="$TESTDIR/$name.log"
  rm -f "$TESTDIR/$name.port"
  "$SERVE" -l 127.0.0.1:0 -p "$TESTDIR/$name.port" "$@" "$root" 2>"$LOG" &
  pid=$!
  cleanup_fn "kill $pid 2>/dev/null"
  for _ in $(seq 100); do
    [ -s "$TESTDIR/$name.port" ] && break
    sleep 0.05
  done
  [ -s "$TESTDIR/$name.port" ] || fail "tftp-serve did not start: $(cat "$LOG")"
  PORT=$(cat "$TESTDIR/$name.port")
  SERVER_PID=$pid
}

# Sends a raw request: "\0\1" + the strings joined by NULs + "\0", and
# prints the answer as "ERROR code", "DATA block length", "OACK" or
# "none".
raw_request () {
  /usr/bin/python3 - "$PORT" "$@" <<'PY'
import socket, sys
port, parts = int(sys.argv[1]), [p.encode() for p in sys.argv[2:]]
pkt = b"\0\1" + b"\0".join(parts) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(pkt, ("127.0.0.1", port))
try:
    data, _ = s.recvfrom(70000)
except socket.timeout:
    print("none")
    sys.exit(0)
op = int.from_bytes(data[:2], "big")
if op == 5:
    print("ERROR", int.from_bytes(data[2:4], "big"))
elif op == 3:
    print("DATA", int.from_bytes(data[2:4], "big"), len(data) - 4)
else:
    print("OPCODE", op)
PY
}

# logged TEXT: the server logged a line containing TEXT (fixed string).
logged () {
  grep -qF -- "$1" "$LOG" || fail "not in the log: $1 (log: $(tail -5 "$LOG"))"
}

start_server main
out="$TESTDIR/out"

# Every size with every client, byte-exact.
for f in empty f511 f512 f513 f1048576 sub/nested; do
  for bs in 512 1468; do
    curl -sSf --tftp-blksize $bs -o "$out/c" "tftp://127.0.0.1:$PORT/$f" ||
      fail "curl $f blksize $bs"
    cmp "$root/$f" "$out/c"
  done
  curl -sSf --tftp-no-options -o "$out/c" "tftp://127.0.0.1:$PORT/$f"
  cmp "$root/$f" "$out/c"
  rm -f "$out/h"
  (cd "$out" && tftp -m binary 127.0.0.1 "$PORT" -c get "$f" h) 2>&1 |
    { ! grep .; } || fail "tftp-hpa get $f"
  cmp "$root/$f" "$out/h"
  "$GET" -b 1468 -w 16 -s -o "$out/g" 127.0.0.1 "$PORT" "$f" 2>"$out/g.err"
  cmp "$root/$f" "$out/g"
done

# tsize and blksize as curl sees them in the OACK.
curl -v -sSf --tftp-blksize 1468 -o /dev/null "tftp://127.0.0.1:$PORT/f1048576" \
  2>"$out/v" || fail "curl -v"
grep -q 'got option=(tsize) value=(1048576)' "$out/v" || fail "no tsize: $(cat "$out/v")"
grep -q 'got option=(blksize) value=(1468)' "$out/v" || fail "no blksize"
# A larger blksize than the server grants comes back smaller.
curl -v -sSf --tftp-blksize 8192 -o "$out/c" "tftp://127.0.0.1:$PORT/f1048576" 2>"$out/v"
grep -q 'got option=(blksize) value=(1468)' "$out/v" || fail "blksize not capped"
cmp "$root/f1048576" "$out/c"
# windowsize, as tftp-get reports the OACK.
"$GET" -b 1468 -w 16 -s -o "$out/g" 127.0.0.1 "$PORT" f1048576 2>"$out/g.err"
grep -q 'blksize 1468, windowsize 16, tsize 1048576' "$out/g.err" ||
  fail "windowsize not granted: $(cat "$out/g.err")"

# Past 65535 blocks: rollover at blksize 512 with each client.
(cd "$out" && tftp -m binary 127.0.0.1 "$PORT" -c get big h)
cmp "$root/big" "$out/h"
curl -sSf --tftp-blksize 512 -o "$out/c" "tftp://127.0.0.1:$PORT/big"
cmp "$root/big" "$out/c"
"$GET" -b 512 -w 8 -o "$out/g" 127.0.0.1 "$PORT" big 2>/dev/null
cmp "$root/big" "$out/g"
rm -f "$out/h" "$out/c" "$out/g"

# Refusals: the client gets an ERROR, the data never leaves, the log
# names the client and the quoted name.
expect_refused () {   # expect_refused "ERROR n" "log text" PARTS...
  local want=$1 text=$2 got
  shift 2
  got=$(raw_request "$@")
  [ "$got" = "$want" ] || fail "request $*: got \"$got\", want \"$want\""
  logged "$text"
}
expect_refused "ERROR 2" 'refused "../f511": file name contains a ".." component' \
  ../f511 octet
expect_refused "ERROR 2" 'refused "sub/../../etc/passwd"' sub/../../etc/passwd octet
expect_refused "ERROR 1" 'refused "/etc/passwd": open: No such file' /etc/passwd octet
expect_refused "ERROR 2" 'refused "passwd-link": the path goes through a symbolic link' \
  passwd-link octet
expect_refused "ERROR 2" 'refused "etc-link/passwd"' etc-link/passwd octet
expect_refused "ERROR 2" 'refused "inner-link"' inner-link octet
expect_refused "ERROR 2" 'refused "sub": not a regular file' sub octet
# A NUL inside the name: the rest is read as the mode, and refused.
expect_refused "ERROR 4" 'refused "f511": unsupported transfer mode "/../../etc/passwd"' \
  f511 /../../etc/passwd octet
expect_refused "ERROR 2" 'refused "f\x1b511": file name contains control characters' \
  "$(printf 'f\033511')" octet
long=$(printf 'a%.0s' $(seq 300))
expect_refused "ERROR 2" "file name of 300 bytes" "$long" octet
expect_refused "ERROR 8" 'option "blksize" given twice' f511 octet blksize 512 blksize 1024
logged "tftp: 127.0.0.1:"
# With the real clients too.
curl -sS --path-as-is -o "$out/x" "tftp://127.0.0.1:$PORT/../etc/passwd" 2>/dev/null &&
  fail "curl got ../etc/passwd"
[ ! -s "$out/x" ] || fail "curl wrote data for ../etc/passwd"
(cd "$out" && tftp -m binary 127.0.0.1 "$PORT" -c get /etc/passwd p) 2>&1 |
  grep -q 'Error code 1' || fail "tftp-hpa /etc/passwd not refused"
[ ! -s "$out/p" ] || fail "tftp-hpa received data for /etc/passwd"
(cd "$out" && tftp -m binary 127.0.0.1 "$PORT" -c get passwd-link p) 2>&1 |
  grep -q 'Error code 2' || fail "tftp-hpa passwd-link not refused"
[ ! -s "$out/p" ] || fail "tftp-hpa received data through a symlink"
# Writes: refused, nothing created.
(cd "$root" && tftp -m binary 127.0.0.1 "$PORT" -c put f511 written) 2>&1 |
  grep -q 'Error code 2' || fail "WRQ not refused"
[ ! -e "$root/written" ] || fail "a WRQ created a file"
logged 'refused "written": write request'

# 100 concurrent clients, alternating block sizes.
pids=()
for i in $(seq 100); do
  bs=$((i % 2 ? 512 : 1468))
  curl -sSf --tftp-blksize $bs -o "$out/p$i" "tftp://127.0.0.1:$PORT/f1048576" &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || fail "a concurrent curl failed"
done
for i in $(seq 100); do
  cmp "$root/f1048576" "$out/p$i"
done
rm -f "$out"/p*

# The counters agree: nothing failed, every refusal counted.
kill -USR1 "$SERVER_PID"
for _ in $(seq 50); do grep -q 'stats:' "$LOG" && break; sleep 0.1; done
grep 'stats:' "$LOG" | grep -q 'failed=0 ' || fail "failed transfers: $(grep stats: "$LOG")"
grep 'stats:' "$LOG" | grep -q 'refused=15 ' || fail "refusals: $(grep stats: "$LOG")"

# Rate limit: 1 MiB/s per client address, shared by its transfers.
start_server rated --rate-limit 1M
start=$(date +%s%N)
curl -sSf -o "$out/r1" "tftp://127.0.0.1:$PORT/f1048576" &
p1=$!
curl -sSf --tftp-blksize 1468 -o "$out/r2" "tftp://127.0.0.1:$PORT/f1048576"
wait $p1
elapsed=$((($(date +%s%N) - start) / 1000000))
cmp "$root/f1048576" "$out/r1"
cmp "$root/f1048576" "$out/r2"
# 2 MiB at 1 MiB/s, less the first 0.1 s burst.
[ $elapsed -ge 1700 ] || fail "rate limit not applied: 2 MiB in $elapsed ms"
echo PASS
