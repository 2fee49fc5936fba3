#!/bin/bash
# A real network boot, end to end, from SeaBIOS and from UEFI (OVMF):
# the qemu guest's PXE ROM (iPXE) gets an address from the site's DHCP
# server and its boot script from diskfarm-bootsvc (proxyDHCP, HTTP),
# loads the vDisk's kernel and initrd, and diskfarm-attach attaches the
# disk the kernel command line names: the device session
# dev/DEVICE@SESSION, served by nbdkit with the diskfarm plugin.  The
# guest's write must be in its session's write cache, the vDisk untouched.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"

e2e_requires nbdkit nbdcopy curl
[ -f "$PLUGIN" ] || fail "$PLUGIN is not built"
e2e_setup
e2e_start_dnsmasq

token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker=marker-$token
make_farm --address "$E2E_HOST_IP"
e2e_make_disk "$TESTDIR/disk.img" 64M "$marker"
df vdisk import v "$TESTDIR/disk.img" >/dev/null
df vdisk boot v --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cmdline "console=ttyS0 panic=-1 quiet e2e.token=$token" >/dev/null
df device add pc1 --mac 52:54:00:00:00:01 --vdisk v >/dev/null
df device add pc2 --mac 52:54:00:00:00:02 --vdisk v --cache persistent >/dev/null

e2e_start_server s1 10809 "$PLUGIN" farm="$TESTDIR/farm" server=srv1 \
  stats-dir="$TESTDIR/stats" \
  session-linger=600
e2e_start_bootsvc srv1 -D dhcp -D boot

# pxe_boot DEVICE MAC FIRMWARE FOUND: boots with a new token, checks the
# verdict, what the disk held from an earlier boot (FOUND: "none" or that
# boot's token), the way it came (iPXE, the boot service's script) and
# where its write went.
pxe_boot () {
  local dev=$1 mac=$2 found=$4 console session
  token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  df vdisk boot v --cmdline "console=ttyS0 panic=-1 quiet e2e.token=$token" >/dev/null
  E2E_MAC=$mac e2e_boot_pxe "$dev" "$3"
  e2e_wait_result "$dev"
  [ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$token" ] ||
    fail "$dev: unexpected result: $E2E_RESULT"
  console=$(tr -d '\r' <"$TESTDIR/$dev.console")
  case $console in
  *"e2e: found wrote=$found"*) ;;
  *) fail "$dev: expected to find \"$found\" from an earlier boot" ;;
  esac
  case $console in
  *"http://$E2E_HOST_IP:10810/boot/${mac//:/-}.ipxe... ok"*) ;;
  *) fail "$dev did not get its script from the boot service" ;;
  esac

  # The boot service minted a session; the guest's write is in its
  # cache (a session lingers after its client left), not in the vDisk.
  session=$(printf '%s\n' "$console" |
            sed -n "s|^e2e: backend diskfarm:dev/$dev@\([0-9a-f]\{32\}\)\$|\1|p")
  [ -n "$session" ] || fail "$dev: no session of 32 hex digits"
  e2e_ns nbdcopy "nbd://$E2E_HOST_IP:10809/dev/$dev@$session" \
    "$TESTDIR/$dev.img" || fail "$dev: cannot read its session back"
  [ "$(e2e_disk_cat "$TESTDIR/$dev.img" /e2e-wrote)" = "$token" ] ||
    fail "$dev: its write is not in its session"
  rm -f "$TESTDIR/$dev.img"
}

pxe_boot pc1 52:54:00:00:00:01 bios none
first_pc2=
pxe_boot pc2 52:54:00:00:00:02 uefi none
first_pc2=$token
# Second boots: the standard-mode device starts clean, the one with a
# persistent cache finds its earlier write.
pxe_boot pc1 52:54:00:00:00:01 bios none
pxe_boot pc2 52:54:00:00:00:02 bios "$first_pc2"

e2e_ns nbdcopy "nbd://$E2E_HOST_IP:10809/img/v" "$TESTDIR/vdisk.img" ||
  fail "cannot read the vDisk"
[ "$(e2e_disk_cat "$TESTDIR/vdisk.img" /e2e-marker)" = "$marker" ] ||
  fail "the vDisk lost its marker"
[ -z "$(e2e_disk_cat "$TESTDIR/vdisk.img" /e2e-wrote)" ] ||
  fail "a guest's write reached the vDisk itself"
echo PASS
