#!/usr/bin/env python3
"""Run one QMP command on a QEMU's monitor socket and wait for what it starts to end.

    bench/qemu/qmp.py SOCKET device_del ID [TIMEOUT]

device_del asks QEMU to unplug device ID (the guest's OS gets a hot-unplug request; the
device goes once the guest has let go of it and powered the slot off); this waits, at most
TIMEOUT seconds (default 300), for QEMU's DEVICE_DELETED event naming ID. It prints one line,
"ok: ..." or "error: ...", and exits 0 only with the event seen.
"""
import json
import socket
import sys
import time


def main(argv):
    if len(argv) not in (4, 5) or argv[2] != "device_del":
        print("usage: qmp.py SOCKET device_del ID [TIMEOUT]", file=sys.stderr)
        return 2
    path, dev = argv[1], argv[3]
    limit = float(argv[4]) if len(argv) == 5 else 300.0
    start = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5.0)
    s.connect(path)
    stream = s.makefile("rwb", buffering=0)

    def read_msg():
        # One JSON object per line; the socket timeout bounds each wait, the deadline all.
        while True:
            if time.monotonic() - start > limit:
                raise TimeoutError
            try:
                line = stream.readline()
            except socket.timeout:
                continue
            if not line:
                raise ConnectionError("QEMU closed the monitor")
            return json.loads(line)

    def command(name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        stream.write(json.dumps(msg).encode() + b"\n")
        while True:
            m = read_msg()
            if "return" in m:
                return None
            if "error" in m:
                return m["error"].get("desc", str(m["error"]))
            if m.get("event") == "DEVICE_DELETED" and m.get("data", {}).get("device") == dev:
                events.append(m)

    events = []
    read_msg()  # the greeting
    err = command("qmp_capabilities")
    if err:
        print(f"error: qmp_capabilities: {err}")
        return 1
    err = command("device_del", {"id": dev})
    if err:
        print(f"error: device_del {dev}: {err}")
        return 1
    try:
        while not events:
            m = read_msg()
            if m.get("event") == "DEVICE_DELETED" and m.get("data", {}).get("device") == dev:
                events.append(m)
    except TimeoutError:
        print(f"error: device_del {dev}: no DEVICE_DELETED within {limit:.0f} s "
              "(the guest did not let go of the device)")
        return 1
    print(f"ok: device_del {dev}: DEVICE_DELETED after {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, ValueError) as e:
        print(f"error: QMP: {e}")
        sys.exit(1)
