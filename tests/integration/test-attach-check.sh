#!/bin/bash
# diskfarm-attach against real servers on loopback, in --check mode
# (negotiates with every server, attaches nothing: the host has no
# kernel NBD client; tests/e2e boots guests for that): what each server
# offers, and a clear word for each way a server can fail.  Also its
# command line: --help, --version, kernel parameters from a file.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires /usr/bin/python3 --version
ATTACH="$DISKFARM_BUILD/attach/diskfarm-attach"

# serve NAME [NBDKIT-ARGS...]: nbdkit on a free port, in $PORT_NAME.
serve () {
  local name=$1 port pidfile=$TESTDIR/$1.pid
  shift
  port=$(free_tcp_port)
  nbdkit -P "$pidfile" -i 127.0.0.1 -p "$port" "$@"
  for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.05; done
  [ -s "$pidfile" ] || fail "nbdkit $name did not start"
  cleanup_fn "kill $(cat "$pidfile")"
  printf -v "PORT_$name" '%s' "$port"
}

serve good --filter=exportname memory 64M exportname-strict=true \
  exportname=dev/pc1@s1
serve ro -r --filter=blocksize-policy memory 1G blocksize-minimum=4096 \
  blocksize-preferred=65536
serve multi memory 1M
serve single --filter=multi-conn memory 1M multi-conn-mode=disable
closed=$(free_tcp_port)

# A server that accepts and never says a word, one that is no NBD
# server, and one that greets and hangs up.
/usr/bin/python3 - "$TESTDIR" <<'EOF' &
import socket, sys, threading, time
def listen(name, handler):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
    open(f"{sys.argv[1]}/{name}.port", "w").write(str(s.getsockname()[1]))
    def loop():
        conns = []
        while True:
            c, _ = s.accept(); conns.append(c); handler(c)
    threading.Thread(target=loop, daemon=True).start()
listen("silent", lambda c: None)
listen("http", lambda c: (c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), c.close()))
listen("hangup", lambda c: (c.sendall(b"NBDMAGIC"), c.close()))
time.sleep(120)
EOF
cleanup_fn "kill $!"
for f in silent http hangup; do
  for _ in $(seq 100); do [ -s "$TESTDIR/$f.port" ] && break; sleep 0.05; done
done
silent=$(cat "$TESTDIR/silent.port")
http=$(cat "$TESTDIR/http.port")
hangup=$(cat "$TESTDIR/hangup.port")

check () {   # check SERVERS EXPORT [OPTIONS...]: --check's output
  "$ATTACH" --check --connect-timeout 1 --servers "$1" --export "$2" \
    "${@:3}" 2>&1 || true
}

out=$(check "127.0.0.1:$PORT_good" dev/pc1@s1)
[ "$out" = "127.0.0.1:$PORT_good: dev/pc1@s1: 64.0 MiB (67108864 bytes), \
read-write, flush, fua, trim, block size 512, 1 connection" ] ||
  fail "good server: $out"
"$ATTACH" --check -s "127.0.0.1:$PORT_good" -e dev/pc1@s1 >/dev/null ||
  fail "--check fails although the server answers"

out=$(check "127.0.0.1:$PORT_good" dev/pc2@s1)
[ "$out" = "127.0.0.1:$PORT_good: unknown export \"dev/pc2@s1\"" ] ||
  fail "unknown export: $out"
expect_fail "unknown export" "$ATTACH" --check -s "127.0.0.1:$PORT_good" \
  -e dev/pc2@s1

out=$(check "127.0.0.1:$PORT_ro" img/base --block-size 512)
case $out in
*"block size 512 is below the server's minimum of 4096"*) ;;
*) fail "block size below the minimum: $out" ;;
esac
out=$(check "127.0.0.1:$PORT_ro" img/base)
case $out in
*"1.0 GiB (1073741824 bytes), read-only, flush, block size 4096, 1 connection") ;;
*) fail "read-only server with 4K blocks: $out" ;;
esac

out=$(check "127.0.0.1:$PORT_multi" x --connections 4)
case $out in
*"1.0 MiB (1048576 bytes), read-write, flush, fua, trim, block size 512, 4 connections") ;;
*) fail "multi-conn: $out" ;;
esac
out=$(check "127.0.0.1:$PORT_single" x -c 2)
case $out in
*"does not allow several connections to one export; using one"*"1 connection") ;;
*) fail "no multi-conn: $out" ;;
esac

start=$SECONDS
out=$(check "127.0.0.1:$closed,127.0.0.1:$silent,127.0.0.1:$http,\
127.0.0.1:$hangup" dev/pc1@s1)
[ $((SECONDS - start)) -le 4 ] || fail "the silent server took too long"
want="127.0.0.1:$closed: connect: Connection refused
127.0.0.1:$silent: timed out waiting for the server's greeting
127.0.0.1:$http: not an NBD server (no NBDMAGIC greeting)
127.0.0.1:$hangup: the server closed the connection instead of sending the server's greeting"
[ "$out" = "$want" ] || fail "failing servers: $out"

# Kernel parameters from a file; options win over them.
cat >"$TESTDIR/cmdline" <<EOF
BOOT_IMAGE=/vmlinuz root=/dev/nbd0p1 diskfarm.servers=127.0.0.1:$closed \
diskfarm.export=dev/pc1@s1 diskfarm.connect_timeout=1 diskfarm.bogus=1
EOF
out=$("$ATTACH" --check --cmdline "$TESTDIR/cmdline" 2>&1 || true)
[ "$out" = "diskfarm-attach: warning: unknown kernel parameter diskfarm.bogus ignored
127.0.0.1:$closed: connect: Connection refused" ] || fail "cmdline: $out"
out=$("$ATTACH" --check --cmdline "$TESTDIR/cmdline" \
      -s "127.0.0.1:$PORT_good" 2>/dev/null)
case $out in
"127.0.0.1:$PORT_good: dev/pc1@s1: 64.0 MiB"*) ;;
*) fail "--servers does not win over diskfarm.servers: $out" ;;
esac
echo "root=/dev/sda1 quiet" >"$TESTDIR/cmdline"
expect_fail "no servers: give --servers or diskfarm.servers=" \
  "$ATTACH" --cmdline "$TESTDIR/cmdline"

# Bad input says what is wrong.
expect_fail '--servers: server "nas" is not an IP address' \
  "$ATTACH" --check -s nas -e x
expect_fail '--connections: "0" is not a number from 1 to 16' \
  "$ATTACH" --check -s 127.0.0.1 -e x -c 0
expect_fail 'kernel parameter diskfarm.timeout: "soon" is not a number' \
  "$ATTACH" --check --cmdline <(echo "diskfarm.timeout=soon")
expect_fail '"/dev/sda" is not an NBD device' "$ATTACH" --disconnect /dev/sda
expect_fail 'unexpected argument "extra"' "$ATTACH" -s 127.0.0.1 -e x extra

# --help fits 80 columns and goes to stdout; --version.
"$ATTACH" --help | grep -q '^Usage: diskfarm-attach' || fail "--help"
[ "$("$ATTACH" --help | awk 'length > 79' | wc -l)" -eq 0 ] ||
  fail "--help is wider than 80 columns"
"$ATTACH" --version | grep -q '^diskfarm-attach [0-9]' || fail "--version"
echo PASS
