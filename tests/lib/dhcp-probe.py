#!/usr/bin/python3
"""Sends one DHCP request the way PXE firmware or iPXE would, and prints
every reply received within --wait seconds as one JSON object a line.

Used by the boot service tests inside a network namespace.  Standard
library only.  Examples:

  dhcp-probe.py --iface eth0 --mac 52:54:00:00:00:01 --arch 0 --pxe
  dhcp-probe.py --iface eth0 --user-class iPXE --pxe --ipxe-features
  dhcp-probe.py --iface eth0 --type request --server 10.0.0.2 --port 4011
  dhcp-probe.py --iface eth0 --raw-file bad.bin --wait 0
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

TYPES = {"discover": 1, "offer": 2, "request": 3, "decline": 4, "ack": 5,
         "nak": 6, "release": 7, "inform": 8}
NAMES = {v: k.upper() for k, v in TYPES.items()}
TEXT_OPTIONS = {12, 56, 60, 66, 67, 77}


def option(code, data):
    out = b""
    while True:
        out += bytes([code, min(len(data), 255)]) + data[:255]
        data = data[255:]
        if not data:
            return out


def build(a):
    mac = bytes.fromhex(a.mac.replace(":", "").replace("-", ""))
    xid = os.urandom(4)
    flags = 0x8000 if a.broadcast else 0
    head = struct.pack("!BBBB4sHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0,
                       flags, socket.inet_aton(a.ciaddr), bytes(4), bytes(4),
                       bytes(4), mac + bytes(10), bytes(64), bytes(128))
    opts = option(53, bytes([TYPES[a.type]]))
    if a.pxe:
        arch = a.arch if a.arch is not None else 0
        opts += option(60, b"PXEClient:Arch:%05d:UNDI:002001" % arch)
    if a.vendor:
        opts += option(60, a.vendor.encode())
    if a.arch is not None:
        opts += option(93, struct.pack("!H", a.arch))
        opts += option(94, bytes([1, 2, 1]))
    if a.uuid:
        opts += option(97, bytes([0]) + bytes(range(16)))
    if a.user_class:
        opts += option(77, a.user_class.encode())
    if a.ipxe_features:
        http = b"" if a.no_http else bytes([0x13, 1, 1])
        opts += option(175, http + bytes([0x15, 1, 1, 0xeb, 3, 1, 0, 0]))
    if a.requested:
        opts += option(50, socket.inet_aton(a.requested))
    if a.server_id:
        opts += option(54, socket.inet_aton(a.server_id))
    opts += option(55, bytes([1, 3, 6, 12, 43, 60, 66, 67, 175]))
    return head + b"\x63\x82\x53\x63" + opts + b"\xff", xid


def parse(data):
    if len(data) < 240 or data[236:240] != b"\x63\x82\x53\x63":
        return {"malformed": True, "len": len(data)}
    (op, _, _, _, xid, _, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
     sname, bootfile) = struct.unpack("!BBBB4sHH4s4s4s4s16s64s128s", data[:236])
    opts, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, length = data[i], data[i + 1]
        opts.setdefault(code, b"")
        opts[code] += data[i + 2:i + 2 + length]
        i += 2 + length
    shown = {}
    for code, value in opts.items():
        if code in TEXT_OPTIONS:
            shown[str(code)] = value.decode(errors="replace")
        elif code in (1, 3, 6, 50, 54) and len(value) % 4 == 0:
            shown[str(code)] = ",".join(socket.inet_ntoa(value[j:j + 4])
                                        for j in range(0, len(value), 4))
        elif code in (51, 58, 59) and len(value) == 4:
            shown[str(code)] = struct.unpack("!I", value)[0]
        else:
            shown[str(code)] = value.hex()
    return {
        "op": op, "xid": xid.hex(), "broadcast": bool(flags & 0x8000),
        "type": NAMES.get(opts.get(53, b"\0")[0], "BOOTP"),
        "ciaddr": socket.inet_ntoa(ciaddr), "yiaddr": socket.inet_ntoa(yiaddr),
        "siaddr": socket.inet_ntoa(siaddr), "giaddr": socket.inet_ntoa(giaddr),
        "chaddr": chaddr[:6].hex(":"),
        "file": bootfile.split(b"\0")[0].decode(errors="replace"),
        "options": shown, "len": len(data),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iface", required=True)
    p.add_argument("--mac", default="52:54:00:00:00:01")
    p.add_argument("--type", choices=TYPES, default="discover")
    p.add_argument("--pxe", action="store_true", help="PXEClient vendor class")
    p.add_argument("--vendor", help="option 60 as given")
    p.add_argument("--arch", type=int, help="option 93 (0 BIOS, 7/9 UEFI)")
    p.add_argument("--uuid", action="store_true", help="option 97")
    p.add_argument("--user-class", help="option 77 (iPXE sends iPXE)")
    p.add_argument("--ipxe-features", action="store_true", help="option 175")
    p.add_argument("--no-http", action="store_true",
                   help="option 175 without the HTTP feature")
    p.add_argument("--requested", help="option 50")
    p.add_argument("--server-id", help="option 54")
    p.add_argument("--ciaddr", default="0.0.0.0")
    p.add_argument("--broadcast", action="store_true", help="broadcast flag")
    p.add_argument("--server", default="255.255.255.255")
    p.add_argument("--port", type=int, default=67)
    p.add_argument("--bind-port", type=int, default=68)
    p.add_argument("--raw-file", help="send this file's bytes as they are")
    p.add_argument("--save", help="write the request sent to this file")
    p.add_argument("--wait", type=float, default=1.5)
    a = p.parse_args()

    if a.raw_file:
        with open(a.raw_file, "rb") as f:
            packet, xid = f.read(), None
    else:
        packet, xid = build(a)
    if a.save:
        with open(a.save, "wb") as f:
            f.write(packet)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
    s.bind(("0.0.0.0", a.bind_port))
    start = time.monotonic()
    s.sendto(packet, (a.server, a.port))
    deadline = start + a.wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, peer = s.recvfrom(4096)
        reply = parse(data)
        if reply.get("op") != 2 or (xid is not None and
                                    reply.get("xid") != xid.hex()):
            continue
        reply["from"] = "%s:%d" % peer
        reply["ms"] = round((time.monotonic() - start) * 1000, 1)
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
