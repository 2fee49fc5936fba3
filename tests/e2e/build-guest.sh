#!/bin/bash
# Builds the guest the e2e tests boot: a Debian kernel and a small
# initramfs (busybox, the kernel's nbd, NIC and ext4 modules,
# diskfarm-attach and tests/e2e/guest-init.sh as /init).
#
#   build-guest.sh OUTDIR DISKFARM_ATTACH
#
# Writes OUTDIR/vmlinuz and OUTDIR/initrd.img and prints nothing else
# on success.  Cached: the kernel package is downloaded and unpacked
# once per version; the initramfs is rebuilt only when one of its
# inputs changed (kernel version, busybox, diskfarm-attach, the init
# script, this script).  Safe to run concurrently (a lock).
set -euo pipefail

out=${1:?usage: build-guest.sh OUTDIR DISKFARM_ATTACH}
attach=${2:?usage: build-guest.sh OUTDIR DISKFARM_ATTACH}
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox
init_script=$here/guest-init.sh

# Modules the guest loads, with their dependencies: the NBD client,
# qemu's NICs (e1000 is the default of -nic and of PXE; virtio-net for
# speed), and ext4.
modules=(nbd e1000 virtio_pci virtio_net ext4)

die () {
  echo "build-guest: $*" >&2
  exit 1
}

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

# grep reads all its input (no -q): under pipefail, a writer cut off by
# SIGPIPE would fail the check however the match went.
[ -x "$busybox" ] && "$busybox" --help 2>&1 | grep udhcpc >/dev/null ||
  die "needs a static busybox with udhcpc (busybox-static)"
[ -x "$attach" ] || die "$attach: not built"
# No program interpreter: the initramfs has no dynamic loader.
! readelf -l "$attach" | grep 'program interpreter' >/dev/null ||
  die "$attach is not statically linked"

# The kernel package linux-image-amd64 points at now (apt lists are
# fetched once if the machine has none); offline, the one downloaded
# last time.
kernel_package () {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1
}
kpkg=$(kernel_package)
if [ -z "$kpkg" ] && [ ! -s "$out/kernel/package" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  kpkg=$(kernel_package)
fi
kver_pkg=
if [ -n "$kpkg" ]; then
  kver_pkg=$(apt-cache show "$kpkg" 2>/dev/null |
             sed -n 's/^Version: //p' | head -1)
fi
if [ -z "$kpkg" ] || [ -z "$kver_pkg" ]; then
  [ -s "$out/kernel/package" ] ||
    die "apt-cache does not know linux-image-amd64 (run apt-get update)"
  read -r kpkg kver_pkg <"$out/kernel/package"
fi
kver=${kpkg#linux-image-}

# 1. The kernel and the modules we need, once per package version.
if [ "$(cat "$out/kernel/package" 2>/dev/null)" != "$kpkg $kver_pkg" ]; then
  rm -rf "$out/kernel" "$out/kernel.tmp"
  mkdir -p "$out/kernel.tmp/deb"
  (cd "$out/kernel.tmp/deb" &&
   apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kver_pkg" \
     >/dev/null) || die "could not download $kpkg $kver_pkg"
  dpkg-deb -x "$out/kernel.tmp/deb/${kpkg}_"*.deb "$out/kernel.tmp/root"
  root=$out/kernel.tmp/root
  # The package ships no modules.dep (its postinst runs depmod).
  depmod -b "$root" "$kver"
  mkdir -p "$out/kernel.tmp/keep"
  cp "$root/boot/vmlinuz-$kver" "$out/kernel.tmp/keep/vmlinuz"
  # Load order, dependencies and soft dependencies first, each once.
  # CPU-specific crypto drivers are skipped: qemu's TCG CPU lacks
  # their instructions and the generic ones do the job.
  for m in "${modules[@]}"; do
    modprobe -d "$root" -S "$kver" --show-depends "$m" ||
      die "module $m not in $kpkg"
  done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
    grep -v '/arch/x86/crypto/' >"$out/kernel.tmp/order"
  mkdir -p "$out/kernel.tmp/keep/modules"
  while read -r ko; do
    cp "$ko" "$out/kernel.tmp/keep/modules/"
    basename "$ko" >>"$out/kernel.tmp/keep/modules/order"
  done <"$out/kernel.tmp/order"
  echo "$kpkg $kver_pkg" >"$out/kernel.tmp/keep/package"
  mv "$out/kernel.tmp/keep" "$out/kernel"
  rm -rf "$out/kernel.tmp"
fi

# 2. The initramfs, when an input changed.
key=$( { cat "$out/kernel/package"; sha256sum "$busybox" "$attach" \
         "$init_script" "$0" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/initrd.key" 2>/dev/null)" != "$key" ] ||
   [ ! -s "$out/initrd.img" ] || [ ! -s "$out/vmlinuz" ]; then
  tmp=$out/initrd.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"/{bin,sbin,dev,proc,sys,mnt,run,tmp,etc,lib/modules}
  cp "$busybox" "$tmp/bin/busybox"
  cp "$attach" "$tmp/sbin/diskfarm-attach"
  cp "$init_script" "$tmp/init"
  chmod 755 "$tmp/init" "$tmp/sbin/diskfarm-attach"
  cp "$out/kernel/modules/"* "$tmp/lib/modules/"
  # The kernel needs a console before /init runs to print its output.
  mknod -m 600 "$tmp/dev/console" c 5 1
  (cd "$tmp" && find . | sort | cpio -o -H newc --quiet | gzip -1) \
    >"$out/initrd.img.new"
  cp "$out/kernel/vmlinuz" "$out/vmlinuz.new"
  mv "$out/initrd.img.new" "$out/initrd.img"
  mv "$out/vmlinuz.new" "$out/vmlinuz"
  echo "$key" >"$out/initrd.key"
  rm -rf "$tmp"
fi
