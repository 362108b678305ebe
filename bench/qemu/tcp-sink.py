#!/usr/bin/env python3
"""Accepts one TCP connection on ADDR:PORT and writes what it carries to FILE until the
sender closes it (busybox's `nc -l` stops after its first read when its own stdin is empty).

    tcp-sink.py ADDR PORT FILE
"""
import socket
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with socket.create_server((addr, port)) as srv:
        conn, _ = srv.accept()
        with conn, open(path, "wb") as out:
            while chunk := conn.recv(1 << 16):
                out.write(chunk)
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
