#!/usr/bin/env python3
"""A ring client that speaks the control protocol itself and promises
nothing: it asks for NAME's ring without "hold-lock", maps the memfd,
closes all three descriptors (the mapping is all it keeps of the ring) and
touches READY; it exits once STOP exists.  The control connection stays
open until then, as a client's does.

    rawring.py SOCKET NAME READY STOP

Exit 0 when it got and mapped the ring, 1 otherwise (with the reason)."""
import ctypes
import json
import os
import socket
import sys
import time

PROT_READ = 0x1
MAP_SHARED = 0x01
MAP_FAILED = ctypes.c_void_p(-1).value


def read_line(sock, with_fds=0):
    data, fds = b"", []
    while not data.endswith(b"\n"):
        if with_fds:
            chunk, got, _, _ = socket.recv_fds(sock, 65536, with_fds)
            fds += got
        else:
            chunk = sock.recv(65536)
        if not chunk:
            sys.exit("rawring: qcowd closed the connection")
        data += chunk
    return json.loads(data), fds


def map_shared(fd):
    """mmap(2) itself: Python's mmap module would keep a copy of fd."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    size = os.fstat(fd).st_size
    addr = libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
    if addr in (None, MAP_FAILED):
        sys.exit("rawring: mmap: " + os.strerror(ctypes.get_errno()))
    return addr


def main():
    path, name, ready, stop = sys.argv[1:5]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    greeting, _ = read_line(sock)
    if "QCOWD" not in greeting:
        sys.exit("rawring: not a qcowd: %r" % greeting)
    request = {"execute": "connect", "arguments": {"name": name}}
    sock.sendall(json.dumps(request).encode() + b"\n")
    reply, fds = read_line(sock, with_fds=3)
    if "return" not in reply or len(fds) != 3:
        sys.exit("rawring: connect: %r with %d descriptors" % (reply, len(fds)))
    map_shared(fds[0])
    for fd in fds:
        os.close(fd)
    open(ready, "w").close()
    while not os.path.exists(stop):
        time.sleep(0.05)


main()
