#!/bin/bash
# diskfarm-attach in a real guest: a qemu guest gets an address by DHCP,
# attaches its disk from the kernel command line with the kernel's NBD
# client (netlink), mounts it, reads the marker the test put there and
# writes a file, which must reach the server's image.  The second boot
# lists two servers that do not serve (a host that does not answer, a
# port nothing listens on) before the one that does, and asks for two
# connections.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"

e2e_requires nbdkit
e2e_setup
e2e_start_dnsmasq

session=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
name=dev/pc1@$session
marker=marker-$session
disk=$TESTDIR/disk.img
e2e_make_disk "$disk" 64M "$marker"
# Only this export name is served: attach must send the right one.
e2e_start_server s1 10809 --filter=exportname file "$disk" \
  exportname-strict=true exportname="$name"

check_boot () {     # check_boot GUEST TOKEN: the verdict and the image
  [ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$2" ] ||
    fail "$1: unexpected result: $E2E_RESULT"
  [ "$(e2e_disk_cat "$disk" /e2e-wrote)" = "$2" ] ||
    fail "$1: its write did not reach the server's image"
  grep -q "/dev/nbd0: \"$name\" from $E2E_HOST_IP:10809: 64.0 MiB" \
    "$TESTDIR/$1.console" || fail "$1: attach did not say what it attached"
  grep -q "backend diskfarm:$name" "$TESTDIR/$1.console" ||
    fail "$1: /sys/block/nbd0/backend does not name the export"
}

# 1. One server.
e2e_boot_kernel pc1 "diskfarm.servers=$E2E_HOST_IP:10809 \
diskfarm.export=$name e2e.token=first-$session"
e2e_wait_result pc1
check_boot pc1 "first-$session"

# 2. The first two servers of the list do not serve: attach reports
# each and goes on to the third, with two connections to it.
e2e_boot_kernel pc2 "diskfarm.servers=$E2E_SUBNET.250:10809,\
$E2E_HOST_IP:10999,$E2E_HOST_IP:10809 diskfarm.connect_timeout=2 \
diskfarm.timeout=0 diskfarm.connections=2 diskfarm.export=$name \
e2e.token=second-$session"
e2e_wait_result pc2
check_boot pc2 "second-$session"
grep -q "block size 512, 2 connections" "$TESTDIR/pc2.console" ||
  fail "pc2: not two connections"
grep -q "warning: $E2E_SUBNET.250:10809: connect: " "$TESTDIR/pc2.console" ||
  fail "pc2: no word about the silent server"
grep -q "warning: $E2E_HOST_IP:10999: connect: Connection refused" \
  "$TESTDIR/pc2.console" || fail "pc2: no word about the closed port"
echo PASS
