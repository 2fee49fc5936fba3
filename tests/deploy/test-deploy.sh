#!/bin/bash
# Deploys a farm from nothing with the Debian packages and ansible/site.yml
# on two separate Debian 12 hosts (systemd-nspawn, tests/deploy/lib.sh),
# and boots a diskless guest from it:
#
#  1. the packages are built from the tree (scripts/build-debs);
#  2. site.yml converges srv1 and srv2 (servers, stores, nbdkit, gateway,
#     replication, proxyDHCP boot service) beside the site's DHCP server;
#  3. a second run changes nothing (changed=0);
#  4. a vDisk added to the inventory is imported on the configuration
#     server (srv1), and the replicator makes srv2's replica identical
#     (diskfarm status);
#  5. a qemu guest PXE-boots from the farm, then again with srv1 stopped.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/e2e/lib.sh"
. "$DISKFARM_SRCDIR/tests/deploy/lib.sh"

deploy_requires
e2e_requires
t0=$SECONDS
deploy_debs
deploy_rootfs
echo "deploy: packages and root file system: $((SECONDS - t0)) s"
e2e_setup
e2e_start_dnsmasq

SRV1=$E2E_SUBNET.11
SRV2=$E2E_SUBNET.12
DEPLOY_HOSTS="srv1=$SRV1 srv2=$SRV2"
t0=$SECONDS
host_start srv1 "$SRV1"
host_start srv2 "$SRV2"
host_wait srv1
host_wait srv2
echo "deploy: hosts up: $((SECONDS - t0)) s"

# The inventory: two servers in one site, both with the boot service;
# the device pc1 boots vDisk v (added in step 4).
inv=$TESTDIR/inventory
mkdir -p "$inv/group_vars"
cat >"$inv/hosts.yml" <<EOF
all:
  children:
    diskfarm_servers:
      hosts:
        srv1: {ansible_host: $SRV1, diskfarm_site: lab, diskfarm_power: 1,
               diskfarm_subnets: [$E2E_SUBNET.0/24]}
        srv2: {ansible_host: $SRV2, diskfarm_site: lab, diskfarm_power: 1,
               diskfarm_subnets: [$E2E_SUBNET.0/24],
               diskfarm_store_paths: {store: /srv/diskfarm/store2}}
    diskfarm_boot:
      hosts:
        srv1:
        srv2:
EOF
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
# Until diskfarm-gateway and diskfarm-replicator are packaged.
cat >>"$inv/group_vars/all.yml" <<EOF
diskfarm_gateway_enabled: false
diskfarm_replication_enabled: false
EOF

# playbook NAME: runs site.yml with the inventory in the test's network
# (Debian's ansible), its output in $TESTDIR/NAME.log; fails on a
# failed or unreachable host.  Sets CHANGED to the recap's total.
playbook () {
  local log=$TESTDIR/$1.log t=$SECONDS
  if ! e2e_ns env PATH="$DEPLOY_PATH" ANSIBLE_CONFIG="$DISKFARM_SRCDIR/ansible/ansible.cfg" \
       ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
       ansible-playbook -i "$inv/hosts.yml" "$DISKFARM_SRCDIR/ansible/site.yml" \
       >"$log" 2>&1; then
    tail -40 "$log" >&2
    fail "site.yml ($1) failed (see $log)"
  fi
  CHANGED=$(awk '/ changed=[0-9]+ / { sub(/.* changed=/, ""); n += $1 } END { print n + 0 }' "$log")
  echo "deploy: site.yml ($1): changed=$CHANGED in $((SECONDS - t)) s"
}

# Step 2: from nothing.
playbook converge
[ "$CHANGED" -gt 0 ] || fail "the first run changed nothing"
for h in srv1 srv2; do
  for u in diskfarm-nbdkit diskfarm-bootsvc; do
    host_ssh "$h" systemctl is-active --quiet "$u" || fail "$h: $u is not running"
  done
  host_ssh "$h" cmp -s /etc/diskfarm/farm.conf - <"$TESTDIR/hosts/srv1/root/etc/diskfarm/farm.conf" ||
    fail "$h has another farm.conf than srv1"
done
info=$(host_ssh srv2 diskfarm --json server info srv2)
case $info in
*'"store-paths": "store:/srv/diskfarm/store2"'*) ;;
*) fail "srv2's store path is not in farm.conf: $info" ;;
esac

# Step 3: idempotent, and nothing restarted.
pids=$(host_ssh srv1 systemctl show -p MainPID --value diskfarm-nbdkit diskfarm-bootsvc)
playbook again
[ "$CHANGED" -eq 0 ] || {
  grep -E '^changed:' "$TESTDIR/again.log" >&2
  fail "the second run changed $CHANGED things"
}
[ "$(host_ssh srv1 systemctl show -p MainPID --value diskfarm-nbdkit diskfarm-bootsvc)" = "$pids" ] ||
  fail "the second run restarted a service"

# Step 4: a vDisk (the e2e guest's disk and boot files) in the
# inventory, imported on srv1; srv2 gets it from the replicator.
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
marker=marker-$token
mkdir -p "$TESTDIR/hosts/srv1/root/srv/images"
e2e_make_disk "$TESTDIR/hosts/srv1/root/srv/images/v.img" 64M "$marker"
cp "$E2E_KERNEL" "$TESTDIR/hosts/srv1/root/srv/images/vmlinuz"
cp "$E2E_INITRD" "$TESTDIR/hosts/srv1/root/srv/images/initrd.img"
cat >>"$inv/group_vars/all.yml" <<EOF
diskfarm_vdisks:
  v:
    image: /srv/images/v.img
    kernel: /srv/images/vmlinuz
    initrd: /srv/images/initrd.img
    cmdline: console=ttyS0 panic=-1 quiet e2e.token=$token
EOF
playbook vdisk
grep -A1 'TASK \[diskfarm_server : Import the vDisk\]' "$TESTDIR/vdisk.log" |
  grep -q '^changed: \[srv1\]' || fail "the vDisk was not imported on srv1"
[ "$(host_ssh srv1 systemctl show -p MainPID --value diskfarm-nbdkit diskfarm-bootsvc)" = "$pids" ] ||
  fail "adding a vDisk restarted a service"
host_ssh srv1 diskfarm vdisk info v >/dev/null || fail "srv1 has no vDisk v"
playbook vdisk-again
[ "$CHANGED" -eq 0 ] || {
  grep -B1 '^changed:' "$TESTDIR/vdisk-again.log" >&2
  fail "the run after the import changed $CHANGED things"
}

# The replicator brings v to srv2: diskfarm status says identical.
deadline=$((SECONDS + 120))
until host_ssh srv1 diskfarm status >"$TESTDIR/status.txt" 2>&1; do
  [ $SECONDS -lt $deadline ] || {
    cat "$TESTDIR/status.txt" >&2
    fail "srv2's replica did not become identical within 120 s"
  }
  sleep 1
done
host_ssh srv2 diskfarm vdisk info v >/dev/null || fail "srv2 has no vDisk v"

# Step 5: PXE boots from the deployed farm: proxyDHCP and the script
# from either server, the disk from the servers the script lists.
pxe_boot () {
  E2E_MAC=52:54:00:00:00:01 e2e_boot_pxe "$1" bios
  e2e_wait_result "$1" 240
  [ "$E2E_RESULT" = "DISKFARM-E2E: OK marker=$marker wrote=$token" ] ||
    fail "$1: unexpected result: $E2E_RESULT"
}
E2E_TIMEOUT=300
pxe_boot pc1
host_stop srv1
pxe_boot pc1-again
console=$(tr -d '\r' <"$TESTDIR/pc1-again.console")
case $console in
*"e2e: backend diskfarm:dev/pc1@"*) ;;
*) fail "the second boot did not attach its device session" ;;
esac
echo PASS
