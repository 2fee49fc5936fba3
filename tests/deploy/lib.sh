# diskfarm deployment tests — separate Debian 12 hosts on one machine.
# Source it after tests/functions.sh and tests/e2e/lib.sh:
#
#   . "$DISKFARM_SRCDIR/tests/functions.sh"
#   . "$DISKFARM_SRCDIR/tests/e2e/lib.sh"
#   . "$DISKFARM_SRCDIR/tests/deploy/lib.sh"
#   deploy_requires                       # skips (77) unless all is there
#   deploy_debs                           # scripts/build-debs, once per run
#   deploy_rootfs                         # the hosts' root file system
#   e2e_netns_setup                       # (or e2e_setup) namespace, br0
#   host_start srv1 10.77.0.11 [OPT...]   # boots a host (systemd-nspawn -b)
#   host_wait srv1                        # until ssh answers and systemd runs
#   host_ssh srv1 systemctl status ...
#   deploy_inventory ...; deploy_playbook site.yml
#
# Each host is a systemd-nspawn container booted from its own overlay of
# one root file system made by build-rootfs.sh (cached in the build
# directory), in its own cgroup, on the bridge br0 of the e2e network
# namespace with a static address ($E2E_SUBNET.N/24, systemd-networkd),
# reached by ssh with a key made for the test.  Every host has the
# packages directory $DEPLOY_DEBS read-only at /srv/diskfarm-debs: an apt
# repository ("deb [trusted=yes] file:/srv/diskfarm-debs ./"); the
# dependencies of those packages are in the root file system already, as
# the hosts reach no Debian mirror.  Hosts are stopped (a clean
# shutdown), their overlays unmounted and their cgroups removed at exit.

DEPLOY_DIR=$DISKFARM_BUILD/tests/deploy
DEPLOY_ROOTFS=$DEPLOY_DIR/rootfs/root
# The packages: built once per run (deploy_debs), or given.
: "${DEPLOY_DEBS:=}"
# Debian's ansible and python, whatever PATH says.
DEPLOY_PATH=/usr/sbin:/usr/bin:/sbin:/bin
# What the roles install from Debian beside diskfarm's packages (and so
# what the root file system must hold already).
DEPLOY_DEBIAN_PACKAGES=(nbdkit ipxe curl)

declare -A _host_pid _host_ip _host_cg
_deploy_hosts=()

# deploy_requires: skips unless root, systemd-nspawn, debootstrap,
# Debian's ansible and the tools to build packages are there.
deploy_requires () {
  local c
  requires_root
  for c in systemd-nspawn debootstrap dpkg-buildpackage dpkg-scanpackages \
           ssh ssh-keygen mount flock nsenter curl jq; do
    command -v "$c" >/dev/null || skip "requires $c"
  done
  [ -x /usr/bin/ansible-playbook ] || skip "requires Debian's ansible"
  [ -d /sys/fs/cgroup/unified ] || [ -e /sys/fs/cgroup/cgroup.controllers ] ||
    skip "requires the unified cgroup hierarchy"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    skip "requires overlayfs"
}

# deploy_debs: builds the packages into $DEPLOY_DIR/debs unless
# DEPLOY_DEBS names a directory that holds them already; meanwhile the
# base of the hosts' root file system is made (build-rootfs.sh --base).
deploy_debs () {
  local base_pid
  spawn base_pid "$DISKFARM_SRCDIR/tests/deploy/build-rootfs.sh" --base \
    "$DEPLOY_DIR/rootfs"
  if [ -n "$DEPLOY_DEBS" ]; then
    [ -s "$DEPLOY_DEBS/Packages" ] || fail "$DEPLOY_DEBS: no Packages index"
  else
    DEPLOY_DEBS=$DEPLOY_DIR/debs
    echo "deploy: building the packages"
    "$DISKFARM_SRCDIR/scripts/build-debs" "$DEPLOY_DEBS" >/dev/null ||
      fail "building the packages failed"
  fi
  wait "$base_pid" || fail "could not build the base of the hosts' root file system"
}

# The Debian packages diskfarm's packages depend on (first of each
# alternative), without diskfarm's own.
_deploy_deb_depends () {
  local f own
  own=$(for f in "$DEPLOY_DEBS"/*.deb; do dpkg-deb -f "$f" Package; done)
  for f in "$DEPLOY_DEBS"/*.deb; do
    dpkg-deb -f "$f" Pre-Depends
    dpkg-deb -f "$f" Depends
  done | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' |
    grep -v '^$' | grep -vxF "$own" | sort -u
}

# deploy_rootfs: the hosts' root file system with the dependencies of
# the packages in $DEPLOY_DEBS (build-rootfs.sh, cached).
deploy_rootfs () {
  local deps
  deps=$(_deploy_deb_depends)
  echo "deploy: the hosts' root file system"
  # shellcheck disable=SC2086
  "$DISKFARM_SRCDIR/tests/deploy/build-rootfs.sh" "$DEPLOY_DIR/rootfs" \
    $deps "${DEPLOY_DEBIAN_PACKAGES[@]}" ||
    fail "could not build the hosts' root file system"
  DEPLOY_KEY=$TESTDIR/id_deploy
  [ -f "$DEPLOY_KEY" ] ||
    ssh-keygen -q -t ed25519 -N '' -C diskfarm-deploy-test -f "$DEPLOY_KEY"
}

# host_start NAME IP [NSPAWN-OPTION...]: boots host NAME with address
# IP/24 on br0 of the e2e namespace, with further systemd-nspawn options
# (e.g. --bind=DIR:PATH).  Its console is $TESTDIR/NAME.console.
host_start () {
  local name=$1 ip=$2 dir=$TESTDIR/hosts/$1 up cg
  shift 2
  [ -d "$DEPLOY_ROOTFS" ] || fail "deploy_rootfs first"
  mkdir -p "$dir/upper" "$dir/work" "$dir/root"
  up=$dir/upper
  mkdir -p "$up/etc/systemd/network" "$up/etc/ssh" "$up/root/.ssh"
  echo "$name" >"$up/etc/hostname"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$up/etc/machine-id"
  echo >>"$up/etc/machine-id"
  printf '[Match]\nName=host0\n\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "$ip" >"$up/etc/systemd/network/10-host0.network"
  # No resolver: /etc/hosts names every host, and a lookup of anything
  # else fails at once instead of waiting for an unreachable server.
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
    >"$up/etc/resolv.conf"
  _deploy_hosts_file >"$up/etc/hosts"
  ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$up/etc/ssh/ssh_host_ed25519_key"
  install -m 600 "$DEPLOY_KEY.pub" "$up/root/.ssh/authorized_keys"
  chmod 700 "$up/root/.ssh"
  mount -t overlay "overlay-$name" \
    -o "lowerdir=$DEPLOY_ROOTFS,upperdir=$up,workdir=$dir/work" "$dir/root" ||
    fail "cannot mount the overlay of $name"
  cleanup_fn "_host_teardown $name"

  # A cgroup of its own in both hierarchies (no systemd on the machine
  # to make one), so that systemd inside sees only its own processes.
  cg=diskfarm-deploy-$$-$name
  _host_cg[$name]=$cg
  mkdir -p "/sys/fs/cgroup/unified/$cg"
  [ -d /sys/fs/cgroup/systemd ] && mkdir -p "/sys/fs/cgroup/systemd/$cg"
  _host_ip[$name]=$ip
  : >"$TESTDIR/$name.console"
  (
    echo "$BASHPID" >"/sys/fs/cgroup/unified/$cg/cgroup.procs"
    [ -d "/sys/fs/cgroup/systemd/$cg" ] &&
      echo "$BASHPID" >"/sys/fs/cgroup/systemd/$cg/cgroup.procs"
    export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    # nsenter, not "ip netns exec": that one mounts a new /sys without
    # the cgroup file systems.
    exec nsenter --net="/run/netns/$E2E_NS" systemd-nspawn -q -b -D "$dir/root" \
      -M "$name" --register=no --keep-unit --network-bridge=br0 \
      --resolv-conf=off --timezone=off --console=read-only \
      --bind-ro="$DEPLOY_DEBS:/srv/diskfarm-debs" "$@" </dev/null
  ) >"$TESTDIR/$name.console" 2>&1 &
  _host_pid[$name]=$!
  _deploy_hosts+=("$name")
  echo "deploy: $name booting ($ip, console $TESTDIR/$name.console)"
}

# /etc/hosts of every host: all hosts the test names in DEPLOY_HOSTS
# ("NAME=IP ..."), so that a host added later is known to the others.
_deploy_hosts_file () {
  local h
  printf '127.0.0.1\tlocalhost\n'
  for h in ${DEPLOY_HOSTS:-}; do
    printf '%s\t%s\n' "${h#*=}" "${h%%=*}"
  done
}

# host_ssh NAME CMD...: runs CMD on the host as root.
host_ssh () {
  local name=$1
  shift
  e2e_ns ssh -q -i "$DEPLOY_KEY" -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR "root@${_host_ip[$name]}" "$@"
}

# host_wait NAME [TIMEOUT]: waits until the host answers ssh and its
# systemd has started everything ("running"); fails with its console
# and failed units otherwise.
host_wait () {
  local name=$1 timeout=${2:-120} deadline state
  deadline=$(($(date +%s) + timeout))
  while :; do
    kill -0 "${_host_pid[$name]}" 2>/dev/null || {
      tail -30 "$TESTDIR/$name.console" >&2
      fail "$name stopped while booting"
    }
    state=$(host_ssh "$name" timeout 30 systemctl is-system-running --wait \
            2>/dev/null) && break
    case $state in
    degraded)
      host_ssh "$name" systemctl --failed --no-legend >&2
      fail "$name booted with failed units" ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || {
      tail -30 "$TESTDIR/$name.console" >&2
      fail "$name did not come up within $timeout s (state: ${state:-no ssh})"
    }
    sleep 0.5
  done
}

# host_stop NAME: a clean shutdown (SIGTERM makes systemd-nspawn ask the
# host's systemd to power off); killed after 30 s.
host_stop () {
  local name=$1 pid=${_host_pid[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "deploy: $name did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  _host_pid[$name]=
}

# Stops the host (if it runs), kills what is left in its cgroup,
# unmounts its overlay and removes its cgroups.
_host_teardown () {
  local name=$1 cg=${_host_cg[$1]:-} d
  host_stop "$name"
  if [ -n "$cg" ]; then
    for d in "/sys/fs/cgroup/unified/$cg" "/sys/fs/cgroup/systemd/$cg"; do
      [ -d "$d" ] || continue
      _cgroup_kill "$d"
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  fi
  umount "$TESTDIR/hosts/$name/root" 2>/dev/null ||
    umount -l "$TESTDIR/hosts/$name/root" 2>/dev/null
}

# Kills every process left in a cgroup tree (there should be none).
_cgroup_kill () {
  local pids
  pids=$(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null)
  [ -z "$pids" ] && return 0
  echo "deploy: killing processes left in $1: $pids" >&2
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && return 0
    sleep 0.1
  done
}
