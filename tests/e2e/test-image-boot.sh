#!/bin/bash
# A real Debian 12 system boots from a diskfarm export through its own
# initramfs with diskfarm's integration: test-image-boot.sh KIND, KIND
# being initramfs-tools or dracut (see build-image.sh).  Not in CI (it
# debootstraps a system, and a systemd initramfs boots slowly under
# TCG): meson test --suite e2e-image.
#
#   1. root=LABEL=e2e rw: DHCP, attach past a server that does not
#      answer, udev finds the file system, the root is mounted read-write,
#      the watcher survives the switch to the real root, a write reaches
#      the server's image.
#   2. diskfarm.cache=device with a read-only export: the root is an
#      overlay over the read-only disk, writes stay on the host.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"

kind=${1:?usage: test-image-boot.sh initramfs-tools|dracut}
e2e_requires nbdkit debootstrap chroot
E2E_TIMEOUT=240
images=$DISKFARM_BUILD/tests/e2e/image
"$DISKFARM_SRCDIR/tests/e2e/build-image.sh" "$images" "$kind" "$ATTACH" ||
  fail "could not build the $kind image"
e2e_setup
e2e_start_dnsmasq
E2E_KERNEL=$images/$kind.vmlinuz
E2E_INITRD=$images/$kind.initrd
disk=$TESTDIR/disk.img
cp --sparse=always "$images/$kind.img" "$disk"
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

# check GUEST WHAT PATTERN: the guest's console has a line like that.
check () {
  tr -d '\r' <"$TESTDIR/$1.console" | grep -q -E "$3" ||
    fail "$1: $2 (no /$3/ on its console)"
}

e2e_start_server rw 10809 --filter=exportname file "$disk" \
  exportname-strict=true exportname=dev/pc1@s1
e2e_boot_kernel sys1 "root=LABEL=e2e rw init=/e2e-init \
diskfarm.servers=$E2E_SUBNET.250:10809,$E2E_HOST_IP:10809 \
diskfarm.connect_timeout=2 diskfarm.export=dev/pc1@s1 diskfarm.device=pc1 \
e2e.token=$token"
e2e_wait_result sys1
[ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=image-$kind wrote=$token" ] ||
  fail "sys1: unexpected result: $E2E_RESULT"
check sys1 "root not read-write from /dev/nbd0" '^e2e: root: /dev/nbd0 ext4 rw'
check sys1 "no watcher after the switch" '^e2e: watcher: @'
check sys1 "no word about the silent server" \
  "$E2E_SUBNET.250:10809: connect: no answer"
[ "$(e2e_disk_cat "$disk" /e2e-wrote)" = "$token" ] ||
  fail "sys1: the write did not reach the server's image"

# A clean image, as a sealed version is (sys1 powered off without
# unmounting: ext4 cannot replay its journal on a read-only disk).
cp --sparse=always "$images/$kind.img" "$TESTDIR/clean.img"
e2e_start_server ro 10810 -r --filter=exportname file "$TESTDIR/clean.img" \
  exportname-strict=true exportname=dev/pc1@s2
e2e_boot_kernel sys2 "root=/dev/nbd0 ro init=/e2e-init \
diskfarm.servers=$E2E_HOST_IP:10810 diskfarm.export=dev/pc1@s2 \
diskfarm.cache=device e2e.token=cached-$token"
e2e_wait_result sys2
[ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=image-$kind wrote=cached-$token" ] ||
  fail "sys2: unexpected result: $E2E_RESULT"
check sys2 "root not the write cache's overlay" \
  '^e2e: root: diskfarm-root overlay rw'
check sys2 "no watcher after the switch" '^e2e: watcher: @'
[ -z "$(e2e_disk_cat "$TESTDIR/clean.img" /e2e-wrote)" ] ||
  fail "sys2: a write went through the read-only export"
echo PASS
