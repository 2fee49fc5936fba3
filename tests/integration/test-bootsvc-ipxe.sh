#!/bin/bash
# iPXE is told apart from PXE firmware (user class "iPXE", option 175) and
# gets its device's script URL instead of iPXE again, so there is no
# PXE -> iPXE loop; an iPXE without HTTP gets the script over TFTP.  The
# URL it is given serves the script.
. "$DISKFARM_SRCDIR/tests/functions.sh"
. "$DISKFARM_SRCDIR/tests/lib/bootsvc.sh"

requires_bootsvc_net
requires curl --version
net_setup
make_boot_farm
start_bootsvc --interface eth0
script_url="http://$SRV_IP:$HTTP_PORT/boot/52-54-00-00-00-01.ipxe"

# PXE firmware first: the iPXE binary.
probe --pxe --arch 0 >"$TESTDIR/pxe.json"
[ "$(json_get file <"$TESTDIR/pxe.json")" = undionly.kpxe ] ||
  fail "PXE firmware: $(cat "$TESTDIR/pxe.json")"

# Then the iPXE it loaded, as iPXE identifies itself: the script.
probe --pxe --arch 0 --user-class iPXE --ipxe-features >"$TESTDIR/ipxe.json"
[ "$(json_get file <"$TESTDIR/ipxe.json")" = "$script_url" ] ||
  fail "iPXE not sent its script: $(cat "$TESTDIR/ipxe.json")"
[ "$(json_get options.43 <"$TESTDIR/ipxe.json")" = "" ] || fail "option 43 for iPXE"

# The user class alone, or option 175 alone, is enough; UEFI iPXE too.
probe --pxe --arch 7 --user-class iPXE >"$TESTDIR/uc.json"
[ "$(json_get file <"$TESTDIR/uc.json")" = "$script_url" ] || fail "user class alone"
probe --pxe --arch 9 --ipxe-features >"$TESTDIR/175.json"
[ "$(json_get file <"$TESTDIR/175.json")" = "$script_url" ] || fail "option 175 alone"

# An iPXE built without HTTP: the same script over TFTP.
probe --pxe --arch 0 --ipxe-features --no-http >"$TESTDIR/nohttp.json"
[ "$(json_get file <"$TESTDIR/nohttp.json")" = \
  "tftp://$SRV_IP/boot/52-54-00-00-00-01.ipxe" ] ||
  fail "iPXE without HTTP: $(cat "$TESTDIR/nohttp.json")"

# The URL serves a script for this device, over HTTP and over TFTP.
net_client_address "$NET_PREFIX.61"
in_cli curl -sf "$script_url" >"$TESTDIR/script.ipxe" || fail "GET $script_url"
head -1 "$TESTDIR/script.ipxe" | grep -qx '#!ipxe' || fail "not an iPXE script"
grep -q "diskfarm.export=dev/pc01@[0-9a-f]\{32\} " "$TESTDIR/script.ipxe" ||
  fail "no export in the script: $(cat "$TESTDIR/script.ipxe")"
in_cli curl -sf "tftp://$SRV_IP/boot/52-54-00-00-00-01.ipxe" >"$TESTDIR/tftp.ipxe" ||
  fail "TFTP script"
grep -q "kernel tftp://$SRV_IP/vdisks/v/kernel " "$TESTDIR/tftp.ipxe" ||
  fail "TFTP script: $(cat "$TESTDIR/tftp.ipxe")"
grep -q "http://" "$TESTDIR/tftp.ipxe" && fail "the TFTP script uses HTTP"
grep -q "proxy offer to 52:54:00:00:00:01 (pc01) on eth0: $script_url (ipxe-script-http)" \
  "$TESTDIR/bootsvc.log" || fail "iPXE offer not logged"
echo PASS
