# diskfarm e2e — boots real qemu guests (TCG) on a private network.
# Source it after tests/functions.sh:
#
#   . "$DISKFARM_SRCDIR/tests/functions.sh"
#   . "$DISKFARM_SRCDIR/tests/e2e/lib.sh"
#   e2e_requires nbdkit                 # skips (77) unless all is there
#   e2e_setup                           # the guest, namespace and bridge
#   e2e_start_dnsmasq                   # the site's DHCP server
#   e2e_make_disk "$TESTDIR/d.img" 64M MARKER
#   e2e_start_server s1 10809 file "$TESTDIR/d.img"   # nbdkit ARGS...
#   e2e_boot_kernel pc1 "diskfarm.servers=$E2E_HOST_IP:10809 ..."
#   e2e_wait_result pc1                 # DISKFARM-E2E: OK ..., or fail
#
# Other helpers: e2e_ns CMD (run in the namespace: a boot service, a
# plugin's nbdkit), e2e_boot_pxe NAME bios|uefi (the NIC's iPXE ROM),
# e2e_wait_line NAME REGEX, e2e_wait_exit NAME, e2e_stop_server NAME,
# e2e_add_host_ip IP, e2e_disk_cat IMAGE PATH.  A guest's console is
# $TESTDIR/NAME.console.
#
# The guest (build-guest.sh, guest-init.sh) is $E2E_KERNEL and
# $E2E_INITRD: it runs diskfarm-attach with the kernel command line,
# mounts /dev/nbd0 (ext4), checks /e2e-marker, writes e2e.token= to
# /e2e-wrote and prints DISKFARM-E2E: OK marker=... wrote=... or
# DISKFARM-E2E: FAIL reason, then powers off.  A boot service must give
# it console=ttyS0.
#
# The network is namespace $E2E_NS: bridge br0 with the host (server)
# address $E2E_HOST_IP/24, one tap per guest on the bridge.  The DHCP
# server runs in a namespace of its own ($E2E_DHCP_NS, $E2E_DHCP_IP)
# joined to the bridge by a veth pair, like a site's DHCP server on
# another machine: a proxyDHCP service can then use port 67 in $E2E_NS.
# Guests get addresses from $E2E_SUBNET.100 to .199.
#
# Everything started here (namespaces, qemu, dnsmasq, whatever runs in
# the namespaces) is stopped at exit, also when the test fails.

E2E_SUBNET=10.77.0
E2E_HOST_IP=$E2E_SUBNET.1
E2E_DHCP_IP=$E2E_SUBNET.2
E2E_NS=dfe2e-$$
E2E_DHCP_NS=dfe2e-$$-dhcp
# Seconds a guest may run before it is killed (TCG is slow: a guest
# boots in 15 to 30 s).
: "${E2E_TIMEOUT:=120}"
# The NIC model: e1000 (qemu's default, its PXE ROM is iPXE) or
# virtio-net-pci.
: "${E2E_NIC:=e1000}"
E2E_GUEST_DIR=$DISKFARM_BUILD/tests/e2e/guest
ATTACH="$DISKFARM_BUILD/attach/diskfarm-attach"
BOOTSVC="$DISKFARM_BUILD/bootsvc/diskfarm-bootsvc"

declare -A _e2e_qemu_pid _e2e_start
_e2e_nguests=0
# The MAC address of each guest by name.  Guests get 52:54:00:e2:e0:NN
# in boot order, unless E2E_MAC is set for the call
# (E2E_MAC=52:54:00:00:00:42 e2e_boot_pxe pc1 bios), e.g. to register
# the device in a farm first.
declare -A E2E_MACS

# e2e_requires [CMD...]: skips unless root, qemu, the network tools and
# the given commands are there.
e2e_requires () {
  local c
  requires_root
  for c in qemu-system-x86_64 ip dnsmasq mkfs.ext4 debugfs cpio flock \
           readelf "$@"; do
    command -v "$c" >/dev/null || skip "requires $c"
  done
  [ -c /dev/net/tun ] || skip "requires /dev/net/tun"
  [ -x "$ATTACH" ] || skip "diskfarm-attach is not built"
  ip netns list >/dev/null 2>&1 || skip "requires network namespaces"
}

# e2e_setup: builds (or reuses) the guest and creates the network.
# Sets E2E_KERNEL and E2E_INITRD.
e2e_setup () {
  "$DISKFARM_SRCDIR/tests/e2e/build-guest.sh" "$E2E_GUEST_DIR" "$ATTACH" ||
    fail "could not build the guest"
  E2E_KERNEL=$E2E_GUEST_DIR/vmlinuz
  E2E_INITRD=$E2E_GUEST_DIR/initrd.img
  e2e_netns_setup
}

# e2e_ns CMD...: runs CMD in the test's network namespace.
e2e_ns () {
  ip netns exec "$E2E_NS" "$@"
}

e2e_netns_setup () {
  netns_add "$E2E_NS" || fail "cannot create namespace $E2E_NS"
  e2e_ns ip link add br0 type bridge forward_delay 0 stp_state 0
  e2e_ns ip addr add "$E2E_HOST_IP/24" dev br0
  e2e_ns ip link set br0 up
}

# e2e_add_host_ip IP: another host address on the bridge (a second
# server address).
e2e_add_host_ip () {
  e2e_ns ip addr add "$1/24" dev br0
}

# e2e_start_dnsmasq [DNSMASQ-ARGS...]: the site's DHCP server (DHCP
# only, no DNS, no boot options unless given), logging to
# $TESTDIR/dnsmasq.log.
e2e_start_dnsmasq () {
  # dnsmasq forks into the background: the namespace's teardown stops it.
  netns_add "$E2E_DHCP_NS" || fail "cannot create $E2E_DHCP_NS"
  e2e_ns ip link add veth-dhcp type veth peer name eth0 \
    netns "$E2E_DHCP_NS"
  e2e_ns ip link set veth-dhcp master br0 up
  ip netns exec "$E2E_DHCP_NS" ip addr add "$E2E_DHCP_IP/24" dev eth0
  ip netns exec "$E2E_DHCP_NS" ip link set eth0 up
  ip netns exec "$E2E_DHCP_NS" dnsmasq \
    --pid-file="$TESTDIR/dnsmasq.pid" --user=root --group=root \
    --port=0 --no-resolv --no-hosts --interface=eth0 --bind-interfaces \
    --dhcp-range="$E2E_SUBNET.100,$E2E_SUBNET.199,255.255.255.0,1h" \
    --dhcp-leasefile="$TESTDIR/dnsmasq.leases" --dhcp-authoritative \
    --no-ping \
    --log-dhcp --log-facility="$TESTDIR/dnsmasq.log" "$@" ||
    fail "dnsmasq did not start"
}

# e2e_start_server NAME PORT [NBDKIT-ARGS...]: nbdkit on
# $E2E_HOST_IP:PORT in the namespace (its log: $TESTDIR/NAME.log), forked
# into the background (the namespace's teardown stops it).  Sets
# E2E_SERVER_PID[NAME]; e2e_stop_server NAME kills it.
declare -A E2E_SERVER_PID
e2e_start_server () {
  local name=$1 port=$2 pidfile=$TESTDIR/$1.pid
  shift 2
  rm -f "$pidfile"
  e2e_ns nbdkit --verbose -P "$pidfile" -i "$E2E_HOST_IP" -p "$port" \
    "$@" 2>"$TESTDIR/$name.log" || fail "nbdkit $name did not start"
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && break
    sleep 0.05
  done
  [ -s "$pidfile" ] || fail "nbdkit $name wrote no pid file"
  E2E_SERVER_PID[$name]=$(cat "$pidfile")
}

e2e_stop_server () {
  local pid=${E2E_SERVER_PID[$1]}
  kill -9 "$pid" 2>/dev/null
  wait_gone "$pid" 10 || fail "nbdkit $1 did not die"
}

# _e2e_qemu NAME NIC-OPTIONS QEMU-ARGS...: a guest with one NIC on the
# bridge, its serial console in $TESTDIR/NAME.console, killed after
# $E2E_TIMEOUT s.
# e2e_start_bootsvc SERVER [ARGS...]: the boot service of the farm in
# $TESTDIR/farm, as server SERVER, on br0 in the namespace (proxyDHCP,
# TFTP from Debian's iPXE binaries, HTTP on port 10810); logs to
# $TESTDIR/bootsvc.log.  Returns once it answers HTTP.
e2e_start_bootsvc () {
  local server=$1 pid
  shift
  [ -x "$BOOTSVC" ] || fail "$BOOTSVC is not built"
  spawn pid ip netns exec "$E2E_NS" \
    "$BOOTSVC" --farm "$TESTDIR/farm" --server "$server" --interface br0 \
    --listen "$E2E_HOST_IP" --tftp-root /usr/lib/ipxe "$@" \
    >"$TESTDIR/bootsvc.log" 2>&1
  for _ in $(seq 100); do
    e2e_ns curl -sf -o /dev/null "http://$E2E_HOST_IP:10810/v1/status" && return 0
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  cat "$TESTDIR/bootsvc.log" >&2
  fail "diskfarm-bootsvc did not start"
}

_e2e_qemu () {
  local name=$1 nicopts=$2 tap mac
  shift 2
  _e2e_nguests=$((_e2e_nguests + 1))
  tap=tap$_e2e_nguests
  mac=${E2E_MAC:-$(printf '52:54:00:e2:e0:%02x' "$_e2e_nguests")}
  e2e_ns ip tuntap add dev "$tap" mode tap
  e2e_ns ip link set "$tap" master br0 up
  E2E_MACS[$name]=$mac
  _e2e_start[$name]=$SECONDS
  : >"$TESTDIR/$name.console"
  # graphics=off: SeaBIOS and the iPXE ROM print on the serial port too.
  ip netns exec "$E2E_NS" timeout -k 5 "$E2E_TIMEOUT" qemu-system-x86_64 \
    -machine pc,graphics=off -accel tcg -m 512 -smp 1 -nodefaults \
    -display none -no-reboot -serial "file:$TESTDIR/$name.console" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device "$E2E_NIC,netdev=n0,mac=$mac$nicopts" \
    "$@" >"$TESTDIR/$name.qemu.log" 2>&1 &
  _e2e_qemu_pid[$name]=$!
  cleanup_fn "stop_pid $!"
  echo "e2e: $name booting (mac $mac, console $TESTDIR/$name.console)"
}

# e2e_boot_kernel NAME APPEND [QEMU-ARGS...]: boots the e2e guest's
# kernel and initramfs directly, with APPEND on its command line.
e2e_boot_kernel () {
  local name=$1 append=$2
  shift 2
  # No option ROM: iPXE would only slow the boot down.
  _e2e_qemu "$name" ",romfile=" -kernel "$E2E_KERNEL" -initrd "$E2E_INITRD" \
    -append "console=ttyS0 panic=-1 quiet $append" "$@"
}

# e2e_boot_pxe NAME [bios|uefi [QEMU-ARGS...]]: network boot with the
# NIC's iPXE option ROM (ipxe-qemu), from SeaBIOS or OVMF.  Whatever
# the boot service hands out must give the kernel console=ttyS0.
e2e_boot_pxe () {
  local name=$1 firmware=${2:-bios} vars
  shift
  [ $# -gt 0 ] && shift
  case $firmware in
  bios)
    _e2e_qemu "$name" "" -boot order=n "$@"
    ;;
  uefi)
    [ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip "requires ovmf"
    vars=$TESTDIR/$name.OVMF_VARS.fd
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"
    _e2e_qemu "$name" "" -boot order=n \
      -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
      -drive "if=pflash,format=raw,unit=1,file=$vars" "$@"
    ;;
  *) fail "e2e_boot_pxe: firmware is bios or uefi, not $firmware" ;;
  esac
}

# _e2e_lines FILE: the console's lines that have ended (a line still
# being written could match a pattern with only its start).
_e2e_lines () {
  local n
  n=$(tr -d '\r' <"$1" | wc -l)
  tr -d '\r' <"$1" | head -n "$n"
}

# e2e_wait_line NAME REGEX [TIMEOUT]: waits until the guest's console
# has a line matching the extended REGEX and prints that line.  Fails
# (with the console's end) if the guest stops or the time runs out.
e2e_wait_line () {
  local name=$1 re=$2 timeout=${3:-$E2E_TIMEOUT} console line deadline
  console=$TESTDIR/$name.console
  deadline=$(($(date +%s) + timeout))
  while :; do
    line=$(_e2e_lines "$console" | grep -a -E -m1 "$re") && break
    if ! kill -0 "${_e2e_qemu_pid[$name]}" 2>/dev/null; then
      line=$(tr -d '\r' <"$console" | grep -a -E -m1 "$re") && break
      _e2e_show_console "$name"
      fail "$name stopped before printing /$re/"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      _e2e_show_console "$name"
      fail "$name: no /$re/ within $timeout s"
    fi
    sleep 0.2
  done
  printf '%s\n' "$line"
}

# e2e_wait_result NAME [TIMEOUT]: waits for the guest's verdict and
# for it to power off.  Sets E2E_RESULT to the OK line; fails the test
# on FAIL.  Prints how long the guest ran.
e2e_wait_result () {
  local name=$1 timeout=${2:-$E2E_TIMEOUT}
  E2E_RESULT=$(e2e_wait_line "$name" '^DISKFARM-E2E: (OK|FAIL)' "$timeout")
  case $E2E_RESULT in
  "DISKFARM-E2E: OK"*) ;;
  *)
    _e2e_show_console "$name"
    fail "$name: ${E2E_RESULT#DISKFARM-E2E: }"
    ;;
  esac
  e2e_wait_exit "$name" 20
  echo "e2e: $name: $E2E_RESULT (ran $((SECONDS - ${_e2e_start[$name]})) s)"
}

# e2e_wait_exit NAME [TIMEOUT]: waits for qemu to end (the guest
# powered off); kills it and fails after TIMEOUT seconds.
e2e_wait_exit () {
  local name=$1 timeout=${2:-20} pid=${_e2e_qemu_pid[$1]}
  for _ in $(seq $((timeout * 5))); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.2
  done
  stop_pid "$pid"
  fail "$name did not power off"
}

_e2e_show_console () {
  echo "--- $1: last lines of the console ---" >&2
  tr -d '\r' <"$TESTDIR/$1.console" | tail -40 >&2
  echo "--- $1: qemu ---" >&2
  tail -5 "$TESTDIR/$1.qemu.log" >&2
}

# e2e_make_disk FILE SIZE MARKER: an ext4 image (no partition table)
# with /e2e-marker holding MARKER.
e2e_make_disk () {
  local file=$1 size=$2 marker=$3 stage
  stage=$(mktemp -d "$TESTDIR/stage.XXXXXX")
  printf '%s\n' "$marker" >"$stage/e2e-marker"
  mkfs.ext4 -q -F -L e2e -d "$stage" "$file" "$size" >/dev/null ||
    fail "mkfs.ext4 failed"
  rm -rf "$stage"
}

# e2e_disk_cat FILE PATH: a file of an ext4 image, read from the host.
e2e_disk_cat () {
  debugfs -R "cat $2" "$1" 2>/dev/null
}
