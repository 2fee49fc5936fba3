#!/bin/busybox sh
# /init of the e2e guest (see build-guest.sh): brings up the network
# with DHCP, attaches the root disk with diskfarm-attach from the kernel
# command line, mounts it, checks the marker file the test put there,
# writes a file, and reports on the serial console:
#
#   DISKFARM-E2E: OK marker=MARKER wrote=TOKEN
#   DISKFARM-E2E: FAIL reason
#
# then powers off.  Kernel parameters for the test:
#   e2e.token=TOKEN       written to /e2e-wrote on the disk
#   e2e.root=DEVICE       what to mount (default /dev/nbd0)
#   e2e.disk=DEVICE       a disk qemu gives the guest (e.g. /dev/vda):
#                         no network, no diskfarm-attach; mounted
#   e2e.pause=SECONDS     after the first write, start writing 16 MiB,
#                         print "DISKFARM-E2E: PAUSE", wait, check the
#                         16 MiB, write /e2e-wrote2 (the test acts
#                         meanwhile)

/bin/busybox mkdir -p /proc /sys /dev /bin /sbin
/bin/busybox --install -s /bin
export PATH=/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

fail () {
  # What the kernel and the watcher said, for the test's log.
  dmesg | grep -i -E 'nbd|diskfarm|block' | tail -20
  ps
  echo "DISKFARM-E2E: FAIL $*"
  sync
  poweroff -f
  sleep 10
}

param () {
  for x in $(cat /proc/cmdline); do
    case $x in
    "$1"=*) echo "${x#*=}"; return ;;
    esac
  done
}

while read -r m; do
  insmod "/lib/modules/$m" || fail "insmod $m"
done </lib/modules/order

# e2e.disk: a local disk (the host serves it), no network, no attach.
disk=$(param e2e.disk)
if [ -z "$disk" ]; then
iface=
for _ in $(seq 50); do
  for d in /sys/class/net/*; do
    [ "${d##*/}" = lo ] || { iface=${d##*/}; break 2; }
  done
  sleep 0.1
done
[ -n "$iface" ] || fail "no network interface"

cat >/etc/udhcpc.script <<'EOF'
#!/bin/sh
case $1 in
bound|renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/${mask:-24}" dev "$interface"
  [ -z "$router" ] || ip route add default via "${router%% *}" dev "$interface"
  echo "e2e: $interface: $ip/${mask:-24}"
  ;;
esac
EOF
chmod 755 /etc/udhcpc.script
ip link set lo up
ip link set "$iface" up
udhcpc -i "$iface" -s /etc/udhcpc.script -q -f -n -t 20 -T 1 ||
  fail "no DHCP lease on $iface"

/sbin/diskfarm-attach -v || fail "diskfarm-attach exited with status $?"
# The watcher stays, marked as a root storage daemon for systemd.
ps | grep -q '[@]sbin/diskfarm-attach' || fail "no diskfarm-attach watcher"
echo "e2e: backend $(cat /sys/block/nbd0/backend)"
fi

root=$(param e2e.root)
root=${root:-${disk:-/dev/nbd0}}
for _ in $(seq 50); do
  [ -b "$root" ] && break
  sleep 0.1
done
mount -t ext4 "$root" /mnt || fail "cannot mount $root"
marker=$(cat /mnt/e2e-marker) || fail "no marker file on $root"
token=$(param e2e.token)
# What an earlier boot left: a clean cache shows none, a persistent one
# shows that boot's token.
echo "e2e: found wrote=$(cat /mnt/e2e-wrote 2>/dev/null || echo none)"
echo "$token" >/mnt/e2e-wrote || fail "cannot write to $root"
sync || fail "sync failed"

pause=$(param e2e.pause)
if [ -n "$pause" ]; then
  # 16 MiB in flight while the test acts: every byte must arrive.
  dd if=/dev/urandom of=/tmp/pattern bs=1M count=16 2>/dev/null
  (cp /tmp/pattern /mnt/e2e-pattern && sync) &
  copy=$!
  echo "DISKFARM-E2E: PAUSE"
  sleep "$pause"
  wait $copy || fail "writing 16 MiB across the pause failed"
  # Read and write after what the test did: both must reach a server.
  [ "$(cat /mnt/e2e-wrote)" = "$token" ] || fail "lost /e2e-wrote"
  echo 3 >/proc/sys/vm/drop_caches
  [ "$(cat /mnt/e2e-marker)" = "$marker" ] || fail "marker unreadable"
  echo "$token" >/mnt/e2e-wrote2 || fail "cannot write after the pause"
  sync || fail "sync after the pause failed"
  echo 3 >/proc/sys/vm/drop_caches
  cmp -s /tmp/pattern /mnt/e2e-pattern ||
    fail "the 16 MiB written across the pause read back wrong"
fi

# What the watcher logged (the kernel log, as its stderr): failovers.
dmesg | grep -a 'diskfarm-attach' | sed 's/^\[[ 0-9.]*\] /e2e: kmsg: /'

umount /mnt || fail "cannot unmount $root"
[ -n "$disk" ] || diskfarm-attach --disconnect /dev/nbd0 || fail "disconnect failed"
if [ -n "$pause" ] && [ -z "$disk" ]; then
  # The watcher notices (it polls the device's state) and exits.
  for _ in $(seq 100); do
    ps | grep -q '[@]sbin/diskfarm-attach' || break
    sleep 0.1
  done
  ps | grep -q '[@]sbin/diskfarm-attach' && fail "the watcher outlived the disconnect"
  dmesg | grep -a 'diskfarm-attach.*disconnected' | sed 's/^\[[ 0-9.]*\] /e2e: kmsg: /'
fi
echo "DISKFARM-E2E: OK marker=$marker wrote=$token"
poweroff -f
sleep 10
