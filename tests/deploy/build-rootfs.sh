#!/bin/bash
# Builds the Debian 12 root file system the deployment test boots as
# separate hosts (systemd-nspawn containers, one overlay each):
#
#   build-rootfs.sh OUTDIR [PACKAGE...]
#   build-rootfs.sh --base OUTDIR
#
# debootstrap (minbase) with systemd, D-Bus, an ssh server and python3
# for ansible (OUTDIR/base), then a copy of that with PACKAGEs (the
# dependencies of diskfarm's packages and whatever the roles install
# from Debian) from the apt sources this machine uses, since the hosts
# themselves reach no mirror.  The result is OUTDIR/root, with no remote
# apt source left in it, no ssh host keys and an empty machine-id: each
# host gets its own when it starts.  --base makes the base only, so
# that it can be made while the packages build.
#
# Cached: the base is rebuilt only when its package list or this script
# changed, the root also when PACKAGEs changed (about 5 minutes and
# 700 MB in all).  Safe to run concurrently (a lock).  Prints nothing
# on success.  Needs root.
set -euo pipefail

base_only=
if [ "${1:-}" = --base ]; then
  base_only=yes
  shift
fi
out=${1:?usage: build-rootfs.sh [--base] OUTDIR [PACKAGE...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
base_packages=(systemd systemd-sysv dbus openssh-server python3 python3-apt
               iproute2 ca-certificates)

die () {
  echo "build-rootfs: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root"
command -v debootstrap >/dev/null || die "needs debootstrap"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

mapfile -t extra < <(printf '%s\n' "$@" | sed '/^$/d' | sort -u)
base_key=$( { sha256sum "$0" | cut -d' ' -f1
              printf '%s\n' "${base_packages[@]}"; } | sha256sum | cut -d' ' -f1)
key=$( { echo "$base_key"; printf '%s\n' "${extra[@]}"; } |
       sha256sum | cut -d' ' -f1)
if [ -n "$base_only" ]; then
  [ -e "$out/base/.complete" ] &&
    [ "$(cat "$out/base.key" 2>/dev/null)" = "$base_key" ] && exit 0
else
  [ -e "$out/root/.complete" ] &&
    [ "$(cat "$out/key" 2>/dev/null)" = "$key" ] && exit 0
fi

# The Debian mirror this machine installs from: the first source of
# "bookworm" in its apt sources (one-line or deb822 format).
host_mirror () {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" && $0 ~ / bookworm / {
           for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Suites:[^\n]*bookworm( |\n|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) {
             split($i, w, /[ \t]+/); print w[2]; exit } }' "$f"
  done
}
mirror=${DISKFARM_DEBIAN_MIRROR:-$(host_mirror | head -1)}
[ -n "$mirror" ] || die "no bookworm source in /etc/apt (set DISKFARM_DEBIAN_MIRROR)"

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

# remove DIR: removes a tree an interrupted build may have left with
# file systems mounted in it (debootstrap mounts /proc and /sys).
remove () {
  findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r |
    while read -r m; do umount -l "$m"; done
  rm -rf --one-file-system "$1"
}

base=$out/base
if ! [ -e "$base/.complete" ] ||
   [ "$(cat "$out/base.key" 2>/dev/null)" != "$base_key" ]; then
  log=$out/base.log
  remove "$base"
  rm -f "$out/base.key"
  include=$(IFS=,; echo "${base_packages[*]}")
  # In a session of its own: stopped (a test that failed meanwhile),
  # this script stops debootstrap and whatever it runs too.
  setsid debootstrap --variant=minbase --include="$include" bookworm "$base" \
    "$mirror" >"$log" 2>&1 &
  boot_pid=$!
  trap 'kill -TERM -- -"$boot_pid" 2>/dev/null; exit 143' TERM INT
  wait "$boot_pid" || die "debootstrap failed (see $log)"
  trap - TERM INT
  touch "$base/.complete"
  echo "$base_key" >"$out/base.key"
fi
[ -z "$base_only" ] || exit 0

root=$out/root
log=$out/build.log
remove "$root"
rm -f "$out/key"
: >"$log"
cp -a --reflink=auto "$base" "$root"
rm "$root/.complete"

# The rest with apt, from this machine's own sources and settings (a
# snapshot mirror needs its Check-Valid-Until, a proxy its address),
# which leave the root file system again afterwards.
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
cp /etc/apt/sources.list.d/*.list "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -r /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
apt-config dump |
  grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|https?::proxy) ' \
  >"$root/etc/apt/apt.conf.d/00host" || true
# Nothing starts in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
in_root "$root" apt-get update -q >>"$log" 2>&1 || die "apt-get update failed (see $log)"
if [ ${#extra[@]} -gt 0 ]; then
  in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${extra[@]}" >>"$log" 2>&1 ||
    die "installing ${extra[*]} failed (see $log)"
fi
in_root "$root" apt-get clean >>"$log" 2>&1
rm -rf "$root/etc/apt/sources.list.d/"* "$root/etc/apt/apt.conf.d/00host" \
  "$root/var/lib/apt/lists/"* "$root/usr/sbin/policy-rc.d"
: >"$root/etc/apt/sources.list"

# Per host at start: ssh host keys, machine-id, hostname, network.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Hosts are reached by ssh; no console logins, no waiting for networks
# nobody configured.
in_root "$root" systemctl enable systemd-networkd ssh >>"$log" 2>&1
in_root "$root" systemctl mask console-getty.service \
  systemd-networkd-wait-online.service >>"$log" 2>&1
touch "$root/.complete"
echo "$key" >"$out/key"
