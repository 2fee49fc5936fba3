#!/bin/bash
# Builds a real Debian 12 system whose initramfs has diskfarm's
# integration, for test-image-boot.sh:
#
#   build-image.sh OUTDIR KIND DISKFARM_ATTACH
#
# KIND is initramfs-tools (Debian's default) or dracut (systemd in the
# initramfs, network-legacy).  Writes OUTDIR/KIND.img (ext4, the root
# file system, with /e2e-init to run instead of systemd and
# /e2e-marker), OUTDIR/KIND.vmlinuz and OUTDIR/KIND.initrd.
#
# The base system comes from debootstrap (a few minutes, once); an image
# is remade when diskfarm-attach, an initramfs script or this script
# changed.  Needs root and Debian's package mirror.
set -euo pipefail

out=${1:?usage: build-image.sh OUTDIR KIND DISKFARM_ATTACH}
kind=${2:?usage: build-image.sh OUTDIR KIND DISKFARM_ATTACH}
attach=${3:?usage: build-image.sh OUTDIR KIND DISKFARM_ATTACH}
here=$(cd "$(dirname "$0")" && pwd)
initramfs=$here/../../attach/initramfs

die () {
  echo "build-image: $*" >&2
  exit 1
}

case $kind in
initramfs-tools|dracut) ;;
*) die "KIND is initramfs-tools or dracut, not $kind" ;;
esac
command -v debootstrap >/dev/null || die "needs debootstrap"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

# in_root ROOT CMD...: runs CMD in the chroot with /proc, /sys, /dev.
in_root () {
  local root=$1 status=0
  shift
  mount --bind /proc "$root/proc"
  mount --bind /sys "$root/sys"
  mount --bind /dev "$root/dev"
  chroot "$root" "$@" || status=$?
  umount "$root/dev" "$root/sys" "$root/proc"
  return $status
}

# 1. The base system, once.
base=$out/base
if [ ! -e "$base/.complete" ]; then
  rm -rf "$base"
  debootstrap --variant=minbase \
    --include=linux-image-amd64,initramfs-tools,udev,kmod,procps,iproute2 \
    bookworm "$base" >"$out/debootstrap.log" 2>&1 ||
    die "debootstrap failed (see $out/debootstrap.log)"
  touch "$base/.complete"
fi

# 2. The system of this kind, when an input changed.
mapfile -t inputs < <(find "$initramfs" -type f | sort)
key=$( { echo "$kind"; sha256sum "$attach" "$0" "${inputs[@]}" |
         cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
[ "$(cat "$out/$kind.key" 2>/dev/null)" = "$key" ] && [ -s "$out/$kind.img" ] &&
  exit 0

root=$out/$kind.root
rm -rf "$root" "$out/$kind.img"
cp -a "$base" "$root"
install -m 755 "$attach" "$root/usr/sbin/diskfarm-attach"
case $kind in
initramfs-tools)
  d=$root/usr/share/initramfs-tools
  sed 's|@SBINDIR@|/usr/sbin|' "$initramfs/initramfs-tools/hooks/diskfarm" \
    >"$d/hooks/diskfarm"
  chmod 755 "$d/hooks/diskfarm"
  for s in local-top local-bottom; do
    mkdir -p "$d/scripts/$s"
    install -m 755 "$initramfs/initramfs-tools/scripts/$s/diskfarm" \
      "$d/scripts/$s/diskfarm"
  done
  in_root "$root" update-initramfs -u -k all >"$out/$kind.log" 2>&1 ||
    die "update-initramfs failed (see $out/$kind.log)"
  ;;
dracut)
  # A golden image's initramfs is for any machine; the classic network
  # scripts (dhclient), which need no D-Bus.
  mkdir -p "$root/etc/dracut.conf.d"
  cat >"$root/etc/dracut.conf.d/10-e2e.conf" <<'EOF'
hostonly="no"
add_dracutmodules+=" network-legacy "
omit_dracutmodules+=" systemd-networkd network-manager "
EOF
  d=$root/usr/lib/dracut/modules.d/90diskfarm
  mkdir -p "$d"
  sed 's|@SBINDIR@|/usr/sbin|' "$initramfs/dracut/90diskfarm/module-setup.sh" \
    >"$d/module-setup.sh"
  chmod 755 "$d/module-setup.sh"
  install -m 755 "$initramfs/dracut/90diskfarm/"*diskfarm*.sh "$d/"
  in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends systemd systemd-sysv dracut dracut-network \
    isc-dhcp-client iputils-arping >"$out/$kind.log" 2>&1 ||
    die "installing dracut failed (see $out/$kind.log)"
  ;;
esac

# Instead of systemd: report on the serial console and power off.
cat >"$root/e2e-init" <<'EOF'
#!/bin/sh
# The test's init on the real root: where the root came from, whether
# diskfarm-attach's watcher survived the switch, and a write.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
token=$(sed -n 's/.*e2e\.token=\([^ ]*\).*/\1/p' /proc/cmdline)
watcher=none
for p in /proc/[0-9]*; do
  c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
  case $c in @*) watcher=$c ;; esac
done
echo "e2e: root: $(awk '$2 == "/" { m = $1 " " $3 " " $4 } END { print m }' /proc/mounts)"
echo "e2e: watcher: $watcher"
if echo "$token" >/e2e-wrote && sync && [ "$(cat /e2e-wrote)" = "$token" ]; then
  echo "DISKFARM-E2E: OK marker=$(cat /e2e-marker) wrote=$token"
else
  echo "DISKFARM-E2E: FAIL cannot write to the root file system"
fi
echo o >/proc/sysrq-trigger
sleep 30
EOF
chmod 755 "$root/e2e-init"
echo "image-$kind" >"$root/e2e-marker"
cp "$root"/boot/vmlinuz-* "$out/$kind.vmlinuz"
cp "$root"/boot/initrd.img-* "$out/$kind.initrd"
size=$(( $(du -sm "$root" | cut -f1) * 5 / 4 + 200 ))
mkfs.ext4 -q -F -L e2e -d "$root" "$out/$kind.img.new" "${size}M" >/dev/null
mv "$out/$kind.img.new" "$out/$kind.img"
rm -rf "$root"
echo "$key" >"$out/$kind.key"
