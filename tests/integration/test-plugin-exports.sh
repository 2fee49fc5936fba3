#!/bin/bash
# The plugin's exports: listing, descriptions, maps, read-only images,
# versions, and hostile names refused while other clients carry on.
. "$DISKFARM_SRCDIR/tests/functions.sh"
requires nbdkit --version
requires nbdinfo --version

make_vdisk_farm
start_nbdkit

nbdinfo --list --json "$(nbd_uri '')" > "$TESTDIR/list.json"
/usr/bin/python3 - "$TESTDIR/list.json" <<'PY'
import json, sys
exports = {e["export-name"]: e for e in json.load(open(sys.argv[1]))["exports"]}
assert set(exports) == {"img/base", "dev/pc1"}, exports
assert exports["img/base"]["is_read_only"]
assert not exports["dev/pc1"]["is_read_only"]
assert exports["dev/pc1"]["can_multi_conn"]
assert "vdisk base" in exports["img/base"]["description"]
PY

# Descriptions end with "vdisk=NAME version=N hash=HEX" (the manifest's
# content hash), as a client reads them after opening the export.
hash=$(df vdisk info base --json | /usr/bin/python3 -c '
import json, sys
print(json.load(sys.stdin)["versions"][0]["hash"].split(":")[-1])')
[ ${#hash} -eq 64 ] || fail "no hash in vdisk info: $hash"
for e in img/base dev/pc1@d1; do
  /usr/bin/nbdsh -c '
h.set_full_info(True)
h.connect_uri("'"$(nbd_uri $e)"'")
d = h.get_export_description()
tail = d.split()[-3:]
assert tail == ["vdisk=base", "version=1", "hash='"$hash"'"], d
' || fail "description of $e"
done

# Image content and holes.
nbdcopy "$(nbd_uri img/base)" "$TESTDIR/img.raw"
cmp "$TESTDIR/img.raw" "$TESTDIR/base.raw" || fail "img/base differs from the import"
nbdinfo --map "$(nbd_uri img/base)" | grep -q 'hole,zero' || fail "no holes in the map"
qemu-img map --output=json "$(nbd_uri img/base)" | grep -q '"zero": true' ||
  fail "qemu-img map sees no holes"
expect_fail 'does not support write' nbdsh_run img/base -c 'h.pwrite(b"x" * 512, 0)'

# Versions: img/NAME@N, maintenance hidden, edit/ appears.
df version new base >/dev/null
nbdinfo --list "$(nbd_uri '')" | grep -q 'export="edit/base"' || fail "edit/ not listed"
expect_fail 'opt_go' nbdinfo "$(nbd_uri img/base@2)"
grep -q 'version 2 is in maintenance' "$TESTDIR/nbdkit.log" || fail "not logged"
nbdinfo "$(nbd_uri img/base@1)" >/dev/null

# A client keeps reading while hostile names are thrown at the server.
nbdsh_run img/base -c '
import time
data = h.pread(65536, 0)
open("'"$TESTDIR"'/ready", "w").close()
for i in range(40):
    assert h.pread(65536, 0) == data
    time.sleep(0.05)
' &
reader=$!
wait_for 30 "the reading client" test -e "$TESTDIR/ready"
long=$(head -c 4000 /dev/zero | tr '\0' a)
for name in "../etc/passwd" "dev/../../etc/shadow" "" "dev/" "img/" "dev/nobody" \
            "img/nothere" "edit/base@1" "img/base@0" "dev/pc1@../x" "dev/$long" \
            "dev/pc1@$long" "IMG/base" "img/base/../../x"; do
  if nbdinfo "$(nbd_uri "$name")" >/dev/null 2>&1; then
    fail "export name \"${name:0:40}\" was accepted"
  fi
done
# NUL in the name: libnbd cannot send one, so speak the protocol by hand.
/usr/bin/python3 - "$NBD_SOCK" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
hello = s.recv(18)
assert hello[:8] == b"NBDMAGIC", hello
s.sendall(struct.pack(">I", 1))                         # fixed newstyle
name = b"dev/pc1\0../../etc"
payload = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(payload)) + payload)  # NBD_OPT_GO
reply = s.recv(20)
magic, opt, rtype, length = struct.unpack(">QIII", reply)
assert rtype & 0x80000000, "NUL in an export name was not refused: %x" % rtype
PY
wait $reader || fail "the reading client was disturbed"
kill -0 "$NBD_PID" || fail "nbdkit died"
grep -q 'export name' "$TESTDIR/nbdkit.log" || fail "refusals not logged"
echo PASS
