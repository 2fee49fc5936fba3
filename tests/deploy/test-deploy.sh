#!/bin/bash
# Deploys a farm from nothing with the Debian packages and ansible/site.yml
# on two separate Debian 12 hosts (systemd-nspawn, tests/deploy/lib.sh),
# and boots a diskless guest from it:
#
#  1. the packages are built from the tree (scripts/build-debs); lintian
#     finds no errors in them, ansible-lint nothing in ansible/;
#  2. site.yml converges srv1 and srv2 (servers, stores, nbdkit, gateway,
#     replication, proxyDHCP boot service) beside the site's DHCP server;
#     each gateway answers /v1/status, and the rest of its API only
#     with the inventory's token;
#  3. a second run changes nothing (changed=0);
#  4. a vDisk is imported on the configuration server (srv1), and the
#     replicator makes srv2's replica identical (diskfarm status); each
#     server keeps its own store;
#  5. a qemu guest PXE-boots from the farm with srv1's boot service and
#     nbdkit stopped: from srv2's replica;
#  6. srv3 joins (added to the inventory): it replicates, and diskfarm
#     status shows its replicas identical;
#  7. srv2 leaves (diskfarm_state: absent): its services stop, the others
#     stop listing it;
#  8. the guest boots again with srv1 stopped: from srv3.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"
. "$DISKFARM_SRCDIR/tests/deploy/lib.sh"

deploy_requires
e2e_requires
t0=$SECONDS
deploy_debs
deploy_rootfs
echo "deploy: packages and root file system: $((SECONDS - t0)) s"
# The packages have no lintian errors, the roles no ansible-lint finding.
lintian --fail-on error "$DEPLOY_DEBS"/*.changes >"$TESTDIR/lintian.log" 2>&1 || {
  cat "$TESTDIR/lintian.log" >&2
  fail "lintian found errors in the packages"
}
(cd "$DISKFARM_SRCDIR/ansible" && PATH=$DEPLOY_PATH ansible-lint --nocolor) \
  >"$TESTDIR/ansible-lint.log" 2>&1 || {
  cat "$TESTDIR/ansible-lint.log" >&2
  fail "ansible-lint found problems in ansible/"
}
e2e_setup
e2e_start_dnsmasq

SRV1=$E2E_SUBNET.11
SRV2=$E2E_SUBNET.12
SRV3=$E2E_SUBNET.13
DEPLOY_HOSTS="srv1=$SRV1 srv2=$SRV2 srv3=$SRV3"
t0=$SECONDS
host_start srv1 "$SRV1"
host_start srv2 "$SRV2"
host_wait srv1
host_wait srv2
echo "deploy: hosts up: $((SECONDS - t0)) s"

# The inventory: the servers of $farm in one site, all with the boot
# service, srv1 with its store at the store's path, the others at a
# path of their own; $removed (if any) marked absent.  The device pc1
# boots vDisk v (added in step 4).
inv=$TESTDIR/inventory
mkdir -p "$inv/group_vars"
farm="srv1 srv2"
removed=
write_hosts () {
  local h
  {
    printf 'all:\n  children:\n    diskfarm_servers:\n      hosts:\n'
    for h in $farm; do
      printf '        %s: {ansible_host: %s, diskfarm_site: lab, diskfarm_subnets: [%s]' \
        "$h" "${_host_ip[$h]}" "$E2E_SUBNET.0/24"
      [ "$h" = srv1 ] || printf ', diskfarm_store_paths: {store: /srv/diskfarm/store-%s}' "$h"
      [ "$h" != "$removed" ] || printf ', diskfarm_state: absent'
      printf '}\n'
    done
    printf '    diskfarm_boot:\n      hosts:\n'
    for h in $farm; do printf '        %s:\n' "$h"; done
  } >"$inv/hosts.yml"
}
write_hosts
cat >"$inv/group_vars/all.yml" <<EOF
ansible_user: root
ansible_ssh_private_key_file: $DEPLOY_KEY
ansible_ssh_common_args: >-
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
diskfarm_apt_repository: "deb [trusted=yes] file:/srv/diskfarm-debs ./"
diskfarm_farm_name: deploytest
diskfarm_config_server: srv1
diskfarm_sites:
  lab: {subnets: [$E2E_SUBNET.0/24]}
diskfarm_stores:
  store: {path: /srv/diskfarm/store, shared: false}
diskfarm_plugin_options: {session-linger: 600}
diskfarm_devices:
  pc1: {mac: "52:54:00:00:00:01", vdisk: v}
diskfarm_boot_dhcp_mode: proxy
EOF

# playbook NAME: runs site.yml with the inventory in the test's network
# (Debian's ansible), its output with each task's time in
# $TESTDIR/NAME.log; fails on a failed or unreachable host.  Sets
# CHANGED to the recap's total.
playbook () {
  local log=$TESTDIR/$1.log t=$SECONDS
  if ! e2e_ns env PATH="$DEPLOY_PATH" ANSIBLE_CONFIG="$DISKFARM_SRCDIR/ansible/ansible.cfg" \
       ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
       ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \
       ansible-playbook -i "$inv/hosts.yml" "$DISKFARM_SRCDIR/ansible/site.yml" \
       >"$log" 2>&1; then
    tail -40 "$log" >&2
    fail "site.yml ($1) failed (see $log)"
  fi
  CHANGED=$(awk '/ changed=[0-9]+ / { sub(/.* changed=/, ""); n += $1 } END { print n + 0 }' "$log")
  echo "deploy: site.yml ($1): changed=$CHANGED in $((SECONDS - t)) s:" \
    $(awk '/ changed=[0-9]+ / { sub(/ +:.* changed=/, "="); print $1 }' "$log")
}

# Step 2: from nothing.
playbook converge
[ "$CHANGED" -gt 0 ] || fail "the first run changed nothing"
for h in srv1 srv2; do
  for u in diskfarm-nbdkit diskfarm-gateway diskfarm-bootsvc \
           diskfarm-replicator-watch diskfarm-replicator.timer; do
    host_ssh "$h" systemctl is-active --quiet "$u" || fail "$h: $u is not running"
  done
  host_ssh "$h" cmp -s /etc/diskfarm/farm.conf - <"$TESTDIR/hosts/srv1/root/etc/diskfarm/farm.conf" ||
    fail "$h has another farm.conf than srv1"
done
info=$(host_ssh srv2 diskfarm --json server info srv2)
case $info in
*"\"address\": \"$SRV2\""*) ;;
*) fail "srv2's address is not in farm.conf: $info" ;;
esac
case $info in
*'"store-paths": "store:/srv/diskfarm/store-srv2"'*) ;;
*) fail "srv2's store path is not in farm.conf: $info" ;;
esac
# Each gateway: /v1/status for anyone, the rest with the token the
# playbook made beside the inventory.
gw_token=$(cat "$inv/credentials/diskfarm-gateway-token") ||
  fail "the playbook kept no gateway token beside the inventory"
check_gateway () {
  local h=$1 url=http://${_host_ip[$1]}:10811 code
  e2e_ns curl -fsS --max-time 10 "$url/v1/status" >"$TESTDIR/status-$h.json" ||
    fail "$h: the gateway does not answer /v1/status"
  jq -e --arg h "$h" '.server == $h' "$TESTDIR/status-$h.json" >/dev/null ||
    fail "$h: /v1/status is not $h's: $(cat "$TESTDIR/status-$h.json")"
  code=$(e2e_ns curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$url/v1/vdisks")
  [ "$code" = 401 ] || fail "$h: /v1/vdisks without the token: HTTP $code, not 401"
  e2e_ns curl -fsS -o /dev/null --max-time 10 \
    -H "Authorization: Bearer $gw_token" "$url/v1/vdisks" ||
    fail "$h: /v1/vdisks with the inventory's token failed"
}
for h in srv1 srv2; do check_gateway "$h"; done

# Step 3: idempotent, and nothing restarted.
units="diskfarm-nbdkit diskfarm-gateway diskfarm-bootsvc"
pids=$(host_ssh srv1 systemctl show -p MainPID --value $units)
playbook again
[ "$CHANGED" -eq 0 ] || {
  grep -E '^changed:' "$TESTDIR/again.log" >&2
  fail "the second run changed $CHANGED things"
}
[ "$(host_ssh srv1 systemctl show -p MainPID --value $units)" = "$pids" ] ||
  fail "the second run restarted a service"

# Step 4: a vDisk (the e2e guest's disk and boot files) imported on
# the configuration server with the CLI; srv2 gets it from the
# replicator.
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker=marker-$token
cmdline="console=ttyS0 panic=-1 quiet e2e.token=$token"
images=$TESTDIR/hosts/srv1/root/srv/images
mkdir -p "$images"
e2e_make_disk "$images/v.img" 64M "$marker"
e2e_make_disk "$images/w.img" 8M w
cp "$E2E_KERNEL" "$images/vmlinuz"
cp "$E2E_INITRD" "$images/initrd.img"
host_ssh srv1 diskfarm vdisk import v /srv/images/v.img >/dev/null ||
  fail "import on srv1 failed"
host_ssh srv1 diskfarm vdisk boot v --kernel /srv/images/vmlinuz \
  --initrd /srv/images/initrd.img --cmdline "'$cmdline'" >/dev/null ||
  fail "setting the boot files on srv1 failed"

# The replicator brings v to srv2: diskfarm status says identical.
# wait_identical SERVER...: until diskfarm status on srv1 lists those
# servers and says every replica is identical (exit 0).
wait_identical () {
  local t=$SECONDS deadline=$((SECONDS + 180)) h all
  while :; do
    if host_ssh srv1 diskfarm status >"$TESTDIR/status.txt" 2>&1; then
      all=yes
      for h in "$@"; do
        grep -q "$h" "$TESTDIR/status.txt" || all=
      done
      [ -z "$all" ] || {
        echo "deploy: $* identical after $((SECONDS - t)) s"
        return 0
      }
    fi
    [ $SECONDS -lt $deadline ] || {
      cat "$TESTDIR/status.txt" >&2
      fail "the replicas did not become identical within 180 s"
    }
    sleep 1
  done
}
wait_identical srv1 srv2
host_ssh srv2 diskfarm vdisk info v >/dev/null || fail "srv2 has no vDisk v"
# In srv2's own store, which srv1 does not have.
host_ssh srv2 test -s /srv/diskfarm/store-srv2/vdisks/v/vdisk.conf ||
  fail "srv2's store holds no vdisk.conf of v"
! host_ssh srv1 test -e /srv/diskfarm/store-srv2 ||
  fail "srv1 has srv2's store directory"

# Step 5: PXE boots from the deployed farm: proxyDHCP and the script
# from either server, the disk from the servers the script lists.
# With srv1's boot service and nbdkit stopped, all of it comes from
# srv2: its boot service lists srv2 only with an identical replica,
# and the guest's disk is srv2's replica.  They start again after.
pxe_boot () {
  E2E_MAC=52:54:00:00:00:01 e2e_boot_pxe "$1" bios
  e2e_wait_result "$1" 240
  [ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$token" ] ||
    fail "$1: unexpected result: $E2E_RESULT"
}
E2E_TIMEOUT=300
host_ssh srv1 systemctl stop diskfarm-bootsvc diskfarm-nbdkit ||
  fail "srv1: stopping the boot service and nbdkit failed"
pxe_boot pc1
console=$(tr -d '\r' <"$TESTDIR/pc1.console")
case $console in
*"loading v from srv2"*) ;;
*) fail "the boot did not load its kernel from srv2" ;;
esac
host_ssh srv1 systemctl start diskfarm-nbdkit diskfarm-bootsvc ||
  fail "srv1: starting the boot service and nbdkit again failed"

# Step 6: srv3 joins, and the inventory names the vDisks: v as the CLI
# made it (nothing to do) and w, new (imported on srv1).  Nothing
# restarts on the others.
pids=$(host_ssh srv1 systemctl show -p MainPID --value $units)
host_start srv3 "$SRV3"
host_wait srv3
farm="srv1 srv2 srv3"
write_hosts
cat >>"$inv/group_vars/all.yml" <<EOF
diskfarm_vdisks:
  v: {image: /srv/images/v.img, kernel: /srv/images/vmlinuz,
      initrd: /srv/images/initrd.img, cmdline: "$cmdline"}
  w: {image: /srv/images/w.img, cache: ram}
EOF
playbook join
# changed_on HOST TASK: how often TASK changed something on HOST.
changed_on () {
  awk -v host="$1" -v want="$2" '
    /^TASK \[/ { t = $0; sub(/^TASK \[[^:]*: /, "", t); sub(/\] \**$/, "", t) }
    $0 ~ "^changed: \\[" host "\\]" && t == want { n++ }
    END { print n + 0 }' "$TESTDIR/join.log"
}
[ "$(changed_on srv1 'Import the vDisk')" = 1 ] ||
  fail "srv1 did not import w (and only w)"
[ "$(changed_on srv1 "Set the vDisk's boot files and kernel parameters")" = 0 ] ||
  fail "srv1 set v's boot files again"
wait_identical srv1 srv2 srv3
for h in srv2 srv3; do
  host_ssh "$h" diskfarm vdisk info w >/dev/null || fail "$h has no vDisk w"
done
check_gateway srv3
[ "$(host_ssh srv1 systemctl show -p MainPID --value $units)" = "$pids" ] ||
  fail "srv3 joining restarted a service of srv1"

# Step 7: srv2 leaves.
removed=srv2
write_hosts
playbook leave
for u in $(host_ssh srv2 systemctl list-unit-files --no-legend --plain 'diskfarm-*' |
           awk '{ print $1 }'); do
  ! host_ssh srv2 systemctl is-active --quiet "$u" || fail "srv2: $u still runs"
  [ "$(host_ssh srv2 systemctl is-enabled "$u")" != enabled ] ||
    fail "srv2: $u is still enabled"
done
for h in srv1 srv3; do
  ! host_ssh "$h" diskfarm server list | grep -q '^srv2 ' ||
    fail "$h still lists srv2"
done

# Step 8: without srv1 (and srv2), the guest boots from srv3.
host_stop srv1
pxe_boot pc1-again
console=$(tr -d '\r' <"$TESTDIR/pc1-again.console")
case $console in
*"loading v from srv3"*) ;;
*) fail "the second boot did not load its kernel from srv3" ;;
esac
echo PASS
