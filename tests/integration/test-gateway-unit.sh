#!/bin/bash
# What the tree installs for diskfarm-gateway under systemd: the unit
# passes systemd-analyze verify, takes optional options from
# /etc/default/diskfarm-gateway (DISKFARM_GATEWAY_OPTS) and its
# ExecStart line runs the gateway with them; the tmpfiles.d entry makes
# the session figures' directory (the gateway's default --stats-dir)
# root:diskfarm 0775.  Both are installed where systemd looks.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/gateway.sh"

requires_root
requires systemd-analyze --version
requires systemd-tmpfiles --version
requires curl --version
requires jq --version
unit=$DISKFARM_BUILD/gateway/diskfarm-gateway.service
tmpfiles=$DISKFARM_SRCDIR/gateway/diskfarm-stats.tmpfiles

# Installed where systemd reads them.
jq -e --arg u "$unit" --arg t "$tmpfiles" \
  '(.[$u] | test("/systemd/system/diskfarm-gateway[.]service$")) and
   (.[$t] | test("/tmpfiles[.]d/diskfarm-stats[.]conf$"))' \
  "$DISKFARM_BUILD/meson-info/intro-installed.json" >/dev/null ||
  fail "install paths: $(grep -E 'gateway.service|tmpfiles' \
    "$DISKFARM_BUILD/meson-info/intro-installed.json")"

# The unit, with ExecStart pointing at this build.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
prog=${exec_start%% *}
[ "$(basename "$prog")" = diskfarm-gateway ] || fail "ExecStart=$exec_start"
mkdir "$TESTDIR/units"
sed "s|^ExecStart=$prog |ExecStart=$GATEWAY |" "$unit" \
  >"$TESTDIR/units/diskfarm-gateway.service"
systemd-analyze verify --man=no "$TESTDIR/units/diskfarm-gateway.service" \
  >"$TESTDIR/verify.out" 2>&1 || fail "systemd-analyze: $(cat "$TESTDIR/verify.out")"
[ ! -s "$TESTDIR/verify.out" ] || fail "systemd-analyze: $(cat "$TESTDIR/verify.out")"

# Optional options from /etc/default/diskfarm-gateway ("-": the file may
# be absent), defaulting to none.
grep -qx 'EnvironmentFile=-/etc/default/diskfarm-gateway' "$unit" ||
  fail "no optional EnvironmentFile: $(grep Environment "$unit")"
grep -qx 'Environment=DISKFARM_GATEWAY_OPTS=' "$unit" ||
  fail "no empty default for DISKFARM_GATEWAY_OPTS"
case " $exec_start " in
  *' $DISKFARM_GATEWAY_OPTS '*) ;;    # unbraced: split into words
  *) fail "ExecStart does not pass \$DISKFARM_GATEWAY_OPTS: $exec_start" ;;
esac

# ExecStart as systemd runs it, with such a file: the options given
# there come after the unit's own and win (another farm, a listen
# address, the test's directories).
make_vdisk_farm ram 16M
make_token
cat >"$TESTDIR/default" <<EOF
# as /etc/default/diskfarm-gateway
DISKFARM_GATEWAY_OPTS="--farm $TESTDIR/farm --listen 127.0.0.1:0 --stats-dir $TESTDIR/stats --cache-dir $TESTDIR"
EOF
(
  # systemd splits an unbraced $VAR at white space, as the shell does.
  DISKFARM_GATEWAY_OPTS=
  . "$TESTDIR/default"
  eval "exec $GATEWAY ${exec_start#* }"
) >"$TESTDIR/gateway-unit.log" 2>&1 &
pid=$!
GW_RUNNING+=("$pid:$TESTDIR/gateway-unit.log")
cleanup_fn "stop_gateway $pid"
wait_for 10 "the gateway started from ExecStart" \
  grep -q "serving farm $TESTDIR/farm as server srv1 .* on 127.0.0.1:" \
  "$TESTDIR/gateway-unit.log"
GW_URL=http://127.0.0.1:$(sed -n 's/^.* on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
                            "$TESTDIR/gateway-unit.log")
expect_code 200 /v1/devices/pc1
stop_gateways

# The tmpfiles.d entry, applied to an empty root that has the diskfarm
# group: the directory the gateway reads by default, root:diskfarm 0775.
stats_dir=$("$GATEWAY" serve --help | grep -A1 -- '--stats-dir DIR' |
  sed -n 's/^ *\(\/[^ )]*\))$/\1/p')
[ -n "$stats_dir" ] || fail "no default --stats-dir in --help"
root=$TESTDIR/root
mkdir -p "$root/etc" "$root/run"
printf 'root:x:0:0::/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ndiskfarm:x:4321:\n' >"$root/etc/group"
systemd-tmpfiles --create --root="$root" "$tmpfiles" >"$TESTDIR/tmpfiles.out" 2>&1 ||
  fail "systemd-tmpfiles: $(cat "$TESTDIR/tmpfiles.out")"
[ "$(stat -c '%F %a %u:%g' "$root$stats_dir")" = "directory 775 0:4321" ] ||
  fail "$stats_dir: $(stat -c '%F %a %u:%g' "$root$stats_dir" 2>&1)"
echo PASS
