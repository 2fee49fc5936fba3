#!/bin/bash
# diskfarm-bootsvc's command line: --help within 80 columns on stdout,
# --version, clear errors with exit status 1 for bad options and bad
# setups, SIGHUP rereads the farm, SIGTERM stops it cleanly; and
# "diskfarm vdisk boot", which gives a vDisk its kernel, initrd and
# parameters.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
"$BOOTSVC" --help >"$TESTDIR/help" 2>"$TESTDIR/help.err" || fail "--help failed"
[ -s "$TESTDIR/help.err" ] && fail "--help wrote to stderr"
awk 'length > 80 { print; bad = 1 } END { exit bad }' "$TESTDIR/help" ||
  fail "--help is wider than 80 columns"
for opt in --farm --server --interface --dhcp-mode --range --tftp-root \
           --http-port --listen --verbose --debug --version; do
  grep -q -- "$opt" "$TESTDIR/help" || fail "--help does not mention $opt"
done
"$BOOTSVC" --version | grep -qx "diskfarm-bootsvc [0-9.]*" || fail "--version"

expect_fail "unrecognized option" "$BOOTSVC" --bogus
expect_fail "--interface" "$BOOTSVC" --farm /nonexistent
expect_fail "needs --range" "$BOOTSVC" -i eth0 --dhcp-mode full
expect_fail "exactly one --interface" "$BOOTSVC" -i a -i b --dhcp-mode full --range 10.0.0.1-10.0.0.2
expect_fail "runs downwards" "$BOOTSVC" -i eth0 --dhcp-mode full --range 10.0.0.9-10.0.0.1
expect_fail "not an IPv4 address" "$BOOTSVC" -i eth0 --dhcp-mode full --range 10.0.0.1-x
expect_fail "are for --dhcp-mode full" "$BOOTSVC" -i eth0 --range 10.0.0.1-10.0.0.2
expect_fail "not proxy, full or off" "$BOOTSVC" --dhcp-mode maybe
expect_fail "not a number from 1 to 65535" "$BOOTSVC" --dhcp-mode off --http-port 0
expect_fail "not a relative path" "$BOOTSVC" --dhcp-mode off --bios-file ../x
expect_fail "unexpected argument" "$BOOTSVC" --dhcp-mode off extra

net_setup
make_boot_farm
run () { in_srv "$BOOTSVC" --farm "$TESTDIR/farm" --server srv1 --tftp-port 0 "$@"; }
expect_fail "is not a farm" run --farm "$TESTDIR/none" --dhcp-mode off
expect_fail 'server "nope" is not in the farm' run --server nope --dhcp-mode off
expect_fail "--tftp-root $TESTDIR/none is not a directory" run --dhcp-mode off \
  --tftp-root "$TESTDIR/none"
expect_fail "interface nosuch" run -i nosuch
cp "$TESTDIR/farm/farm.conf" "$TESTDIR/farm.conf.good"
farm_setting affinity sideways
expect_fail 'affinity "sideways" is not none, best-effort or fixed' run --dhcp-mode off
cp "$TESTDIR/farm.conf.good" "$TESTDIR/farm/farm.conf"

start_bootsvc --dhcp-mode off --tftp-port 0
expect_fail "cannot serve HTTP on every address port $HTTP_PORT" run --dhcp-mode off
grep -q "farm: reloaded" "$TESTDIR/bootsvc.log" && fail "reloaded unasked"
kill -HUP "$BOOTSVC_PID"
wait_for 10 "a reload on SIGHUP" grep -q "farm: reloaded" "$TESTDIR/bootsvc.log"
kill -TERM "$BOOTSVC_PID"
wait_gone "$BOOTSVC_PID" 10 || fail "SIGTERM did not stop it"
grep -q "stopping (signal 15)" "$TESTDIR/bootsvc.log" || fail "stop not logged"

# diskfarm vdisk boot: files copied into the vDisk, relative paths kept.
boot="$TESTDIR/farm/store/vdisks/v/boot"
cmp "$boot/vmlinuz" "$TESTDIR/vmlinuz" || fail "kernel not copied"
cmp "$boot/initrd.img" "$TESTDIR/initrd.img" || fail "initrd not copied"
grep -qx "kernel = boot/vmlinuz" "$TESTDIR/farm/store/vdisks/v/vdisk.conf" ||
  fail "manifest: $(cat "$TESTDIR/farm/store/vdisks/v/vdisk.conf")"
echo new >"$TESTDIR/vmlinuz-6.2"
df vdisk boot v --kernel "$TESTDIR/vmlinuz-6.2" >/dev/null
[ -e "$boot/vmlinuz" ] && fail "the replaced kernel was left behind"
[ "$(df vdisk boot v --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["kernel"], d["initrd"], d["cmdline"])')" \
  = "boot/vmlinuz-6.2 boot/initrd.img root=/dev/nbd0p1 ro" ] || fail "vdisk boot --json"
expect_fail "iPXE scripts give a meaning" df vdisk boot v --cmdline 'quiet ${x}'
expect_fail "No such file" df vdisk boot v --kernel "$TESTDIR/missing"
expect_fail "not in any store" df vdisk boot nope --cmdline quiet
df vdisk boot v --cmdline "" >/dev/null
grep -q "^cmdline" "$TESTDIR/farm/store/vdisks/v/vdisk.conf" && fail "cmdline not cleared"
df vdisk info v | grep -q "boot .*boot/vmlinuz-6.2 boot/initrd.img" || fail "vdisk info"
echo PASS
