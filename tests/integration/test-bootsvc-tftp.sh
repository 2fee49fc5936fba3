#!/bin/bash
# TFTP of the boot service: the iPXE binaries from the TFTP root (Debian's
# /usr/lib/ipxe, whose ipxe.efi is a symlink), a vDisk's kernel and
# initrd by their virtual names, with curl and tftp-hpa as clients;
# missing and forbidden names are refused and the daemon keeps serving.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
requires curl --version
requires test -f /usr/lib/ipxe/undionly.kpxe
net_setup
make_boot_farm
start_bootsvc --interface eth0
net_client_address "$NET_PREFIX.63"
tftp="tftp://$SRV_IP"

in_cli curl -sf "$tftp/undionly.kpxe" -o "$TESTDIR/undionly.kpxe" ||
  fail "curl tftp undionly.kpxe"
cmp "$TESTDIR/undionly.kpxe" /usr/lib/ipxe/undionly.kpxe || fail "undionly.kpxe differs"
if [ -e /usr/lib/ipxe/ipxe.efi ]; then
  in_cli curl -sf "$tftp/ipxe.efi" -o "$TESTDIR/ipxe.efi" || fail "ipxe.efi"
  cmp "$TESTDIR/ipxe.efi" /usr/lib/ipxe/ipxe.efi || fail "ipxe.efi differs"
fi
in_cli curl -sf "$tftp/vdisks/v/kernel" -o "$TESTDIR/kernel" || fail "kernel"
cmp "$TESTDIR/kernel" "$TESTDIR/vmlinuz" || fail "kernel differs"
in_cli curl -sf --tftp-blksize 1468 "$tftp/vdisks/v/initrd" -o "$TESTDIR/initrd" ||
  fail "initrd"
cmp "$TESTDIR/initrd" "$TESTDIR/initrd.img" || fail "initrd differs"
if command -v tftp >/dev/null; then
  (cd "$TESTDIR" && in_cli tftp "$SRV_IP" -m binary -c get vdisks/v/initrd hpa.img) ||
    fail "tftp-hpa get"
  cmp "$TESTDIR/hpa.img" "$TESTDIR/initrd.img" || fail "tftp-hpa initrd differs"
fi

# Refused: missing files, escapes, names of other vDisk files.
for name in missing.efi vdisks/v/vdisk.conf vdisks/nope/kernel ../farm/farm.conf; do
  in_cli curl -sf "$tftp/$name" -o /dev/null && fail "$name was served"
done
in_cli curl -sf "$tftp/undionly.kpxe" -o /dev/null || fail "daemon stopped serving"
[ "$(status_field tftp.completed)" -ge 5 ] || fail "transfers not counted"
[ "$(status_field tftp.refused)" -ge 4 ] || fail "refusals not counted"
echo PASS
