#!/bin/bash
# HTTP of the boot service: a known device's script (servers in order,
# subnet affinity, kernel parameters, a new session each boot), kernel
# and initrd downloads with Range and ETag, iPXE binaries, status, and
# clear refusals (unknown MAC, bad names, a vDisk that cannot boot).
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
requires curl --version
requires test -f /usr/lib/ipxe/undionly.kpxe
net_setup
make_boot_farm
# A second server in the client's site, a third that lacks the store.
df site add lab --subnets "$NET_PREFIX.0/24" >/dev/null
df server add srv2 --address 10.99.0.2:10900 --power 4 >/dev/null
df server add srv3 --address 10.213.0.3 --site lab \
  --store-paths "other:/srv/other" >/dev/null
df server set srv1 --site lab >/dev/null
farm_setting affinity best-effort
df device add pc02 --mac 52:54:00:00:00:02 --vdisk v --cache device >/dev/null
start_bootsvc --dhcp-mode off
net_client_address "$NET_PREFIX.62"
base="http://$SRV_IP:$HTTP_PORT"

get () {    # get PATH [CURL ARGS...]: body on stdout, status in $TESTDIR/code
  local path=$1
  shift
  in_cli curl -s -o - -w '%{stderr}%{http_code}' "$@" "$base$path" \
    2>"$TESTDIR/code"
}

# The script: srv1 (same subnet: best-effort affinity) before srv2
# (power 4, another subnet); srv3 does not carry the store.
get /boot/52-54-00-00-00-01.ipxe >"$TESTDIR/s1"
[ "$(cat "$TESTDIR/code")" = 200 ] || fail "script: HTTP $(cat "$TESTDIR/code")"
grep -q "diskfarm.servers=$SRV_IP:10809,10.99.0.2:10900 " "$TESTDIR/s1" ||
  fail "server list: $(grep -m1 kernel "$TESTDIR/s1")"
grep -q "kernel http://$SRV_IP:$HTTP_PORT/vdisks/v/kernel initrd=initrd BOOTIF=01-52-54-00-00-00-01 " \
  "$TESTDIR/s1" || fail "kernel line: $(cat "$TESTDIR/s1")"
grep -q "diskfarm.device=pc01 diskfarm.timeout=60 root=/dev/nbd0p1 ro || kernel tftp://" \
  "$TESTDIR/s1" || fail "parameters: $(grep -m1 kernel "$TESTDIR/s1")"
grep -q "^:server2$" "$TESTDIR/s1" || fail "no second server block"
grep -q "^:server3$" "$TESTDIR/s1" && fail "srv3 listed without the store"
grep -q "diskfarm.cache" "$TESTDIR/s1" && fail "diskfarm.cache for pc01"
s1=$(grep -o 'dev/pc01@[0-9a-f]*' "$TESTDIR/s1" | head -1)
get /boot/52:54:00:00:00:01.ipxe >"$TESTDIR/s2"
s2=$(grep -o 'dev/pc01@[0-9a-f]*' "$TESTDIR/s2" | head -1)
[ -n "$s1" ] && [ "$s1" != "$s2" ] || fail "sessions $s1 and $s2"
get /boot/52-54-00-00-00-02.ipxe >"$TESTDIR/pc02"
grep -q " diskfarm.cache=device root=" "$TESTDIR/pc02" ||
  fail "pc02 (write cache on the device) lacks diskfarm.cache=device"
# By the hash alone pc02 would start with srv2; affinity puts srv1 first,
# for the script fetched over TFTP too (the resolver knows the client).
grep -q "diskfarm.servers=$SRV_IP:10809,10.99.0.2:10900 " "$TESTDIR/pc02" ||
  fail "pc02 server order: $(grep -m1 -o 'diskfarm.servers=[^ ]*' "$TESTDIR/pc02")"
in_cli curl -sf "tftp://$SRV_IP/boot/52-54-00-00-00-02.ipxe" |
  grep -q "diskfarm.servers=$SRV_IP:10809,10.99.0.2:10900 " ||
  fail "the TFTP script ignores affinity"
farm_setting affinity none
sed -i '0,/^affinity = best-effort$/{/^affinity = best-effort$/d}' "$TESTDIR/farm/farm.conf"
get /boot/52-54-00-00-00-02.ipxe | grep -q "diskfarm.servers=10.99.0.2:10900,$SRV_IP:10809 " ||
  fail "without affinity, pc02 does not start with srv2"
sed -i 's/^affinity = none$/affinity = best-effort/' "$TESTDIR/farm/farm.conf"

# Refusals, each with a reason.
get /boot/52-54-00-00-00-77.ipxe >"$TESTDIR/unknown"
[ "$(cat "$TESTDIR/code")" = 404 ] || fail "unknown MAC: HTTP $(cat "$TESTDIR/code")"
grep -q "no device has MAC 52:54:00:00:00:77" "$TESTDIR/unknown" || fail "404 reason"
grep -q "boot: ignoring unknown MAC 52:54:00:00:00:77" "$TESTDIR/bootsvc.log" ||
  fail "unknown MAC not logged"
get /boot/not-a-mac.ipxe >/dev/null
[ "$(cat "$TESTDIR/code")" = 404 ] || fail "bad script name"
get /vdisks/v/vdisk.conf >/dev/null
[ "$(cat "$TESTDIR/code")" = 404 ] || fail "vdisk.conf served"
get /ipxe/../farm/farm.conf --path-as-is >/dev/null
[ "$(cat "$TESTDIR/code")" = 403 ] || fail "path escape: HTTP $(cat "$TESTDIR/code")"

# Kernel and initrd: whole, by range, cached.
get /vdisks/v/kernel >"$TESTDIR/kernel"
cmp "$TESTDIR/kernel" "$TESTDIR/vmlinuz" || fail "kernel differs"
get /vdisks/v/initrd >"$TESTDIR/initrd"
cmp "$TESTDIR/initrd" "$TESTDIR/initrd.img" || fail "initrd differs"
get /vdisks/v/initrd -r 100000-199999 >"$TESTDIR/part"
[ "$(cat "$TESTDIR/code")" = 206 ] || fail "Range: HTTP $(cat "$TESTDIR/code")"
cmp "$TESTDIR/part" <(tail -c +100001 "$TESTDIR/initrd.img" | head -c 100000) ||
  fail "range content"
get /vdisks/v/initrd -r 900000- >/dev/null
[ "$(cat "$TESTDIR/code")" = 416 ] || fail "unsatisfiable range"
etag=$(in_cli curl -sI "$base/vdisks/v/kernel" | tr -d '\r' |
       sed -n 's/^[Ee][Tt]ag: //p')
[ -n "$etag" ] || fail "no ETag"
get /vdisks/v/kernel -H "If-None-Match: $etag" >/dev/null
[ "$(cat "$TESTDIR/code")" = 304 ] || fail "If-None-Match: HTTP $(cat "$TESTDIR/code")"

# A vDisk that cannot boot: the device is shown why.
df vdisk import w "$TESTDIR/disk.raw" >/dev/null
df device set pc01 --vdisk w >/dev/null
get /boot/52-54-00-00-00-01.ipxe >"$TESTDIR/err"
grep -q "^echo diskfarm: vdisk w has no kernel and initrd" "$TESTDIR/err" ||
  fail "no reason shown: $(cat "$TESTDIR/err")"

get /ipxe/undionly.kpxe >"$TESTDIR/undi"
cmp "$TESTDIR/undi" /usr/lib/ipxe/undionly.kpxe || fail "undionly.kpxe over HTTP"
[ "$(status_field boot.scripts)" = 5 ] || fail "scripts counted: $(status_field boot.scripts)"
[ "$(status_field boot.script_errors)" = 1 ] || fail "script errors counted"
grep -q "http: $NET_PREFIX.62 \"GET /vdisks/v/initrd\" 206 100000" "$TESTDIR/bootsvc.log" ||
  fail "access log"
echo PASS
