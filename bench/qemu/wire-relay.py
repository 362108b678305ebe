#!/usr/bin/env python3
"""The wire between two QEMU stream netdevs, for run-in-guest.sh --wire stream.

    wire-relay.py SOCKET_A SOCKET_B

Listens on two unix stream sockets, accepts one connection on each (QEMU's `-netdev
stream,server=off,...` for the two NICs of a pair) and copies bytes both ways until both
sides have closed. Each direction is an unbounded FIFO: the order of the frames is kept,
nothing is dropped, and the relay never stops reading, so a QEMU writing into a socket
never blocks. (Two stream netdevs of one QEMU joined directly deadlock: QEMU 7.2 writes to
the socket blocking, from the main loop that would also have to read the other end once the
receiving NIC has room again.) The stream netdev frames each packet with a 4-byte length,
which the relay passes through untouched.
"""
import os
import selectors
import socket
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: wire-relay.py SOCKET_A SOCKET_B")
    listeners = []
    for path in sys.argv[1:]:
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(1)
        listeners.append(s)
    # Both ends first (QEMU connects both while it starts), then the copying.
    conns = [ls.accept()[0] for ls in listeners]
    for ls in listeners:
        ls.close()
    for c in conns:
        c.setblocking(False)
    pending = [bytearray(), bytearray()]  # pending[i]: bytes waiting to go out on conns[i]
    open_ = [True, True]
    sel = selectors.DefaultSelector()

    def interest(i):
        ev = selectors.EVENT_READ if open_[i] else 0
        if pending[i]:
            ev |= selectors.EVENT_WRITE
        return ev

    for i, c in enumerate(conns):
        sel.register(c, interest(i), i)
    while any(open_) or any(pending):
        if not any(open_) and not sel.get_map():
            break
        for key, ev in sel.select():
            i = key.data
            c = conns[i]
            if ev & selectors.EVENT_READ:
                try:
                    data = c.recv(1 << 16)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    open_[i] = False
                elif data:
                    pending[1 - i] += data
            if ev & selectors.EVENT_WRITE and pending[i]:
                try:
                    n = c.send(pending[i])
                    del pending[i][:n]
                except BlockingIOError:
                    pass
                except OSError:
                    pending[i].clear()
                    open_[i] = False
        for i, c in enumerate(conns):
            ev = interest(i)
            registered = c in [k.fileobj for k in sel.get_map().values()]
            if ev and registered:
                sel.modify(c, ev, i)
            elif ev:
                sel.register(c, ev, i)
            elif registered:
                sel.unregister(c)
        if not open_[0] and not open_[1]:
            break


if __name__ == "__main__":
    main()
