#!/usr/bin/env python3
"""badpeer.py -- a misbehaving HTTP peer, and a slow client, for pw's fault
tests (python3 stdlib only, loopback only).

  badpeer.py --mode MODE [--port-file FILE] [--count-file FILE]
  badpeer.py --slow-client HOST PORT [--data TEXT|--data-hex HEX]
             [--rate SECS] [--give-up SECS]

As a server it reads one request head (a proxy request, a CONNECT or an
origin request: it does not care which, so it serves as a bad proxy and as
a bad origin alike), then misbehaves as MODE says:

  malformed     answers a line that is not HTTP, then closes
  endless       200 without a length, then a body that never ends
  huge-header   200, then one header line that never ends (up to 10 GiB)
  close-head    closes in the middle of the status line
  close-body    200 with Content-Length 100000, 1000 bytes, then closes

Each connection is counted in --count-file (the number, rewritten),
so a test can tell whether a peer was used at all. The bytes sent are
never held in memory: the endless streams write one block again and again.

--slow-client connects to HOST PORT and sends TEXT (or the bytes HEX;
default a request head that never ends) one byte every SECS seconds
(default 1); it prints
"closed after N bytes in S s" when the server closes the connection,
and exits 0 then; or "still open after N bytes in S s" after --give-up
seconds (default 20), and exits 1.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time

BLOCK = b"a" * 65536
GIB = 1 << 30


def write_file(path, text):
    if not path:
        return
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def read_head(c):
    """Read until the end of a request head (at most 64 KiB)."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < 65536:
        b = c.recv(4096)
        if not b:
            return None
        buf += b
    return buf


def serve_one(c, mode):
    try:
        if read_head(c) is None:
            return
        if mode == "malformed":
            c.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        elif mode == "endless":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Connection: close\r\n\r\n")
            while True:
                c.sendall(BLOCK)
        elif mode == "huge-header":
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
            sent = 0
            while sent < 10 * GIB:
                c.sendall(BLOCK)
                sent += len(BLOCK)
        elif mode == "close-head":
            c.sendall(b"HTTP/1.1 20")
        elif mode == "close-body":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                      + BLOCK[:1000])
    except OSError:
        pass
    finally:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()


def server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    n = 0
    write_file(a.count_file, "0\n")
    write_file(a.port_file, "%d\n" % ls.getsockname()[1])
    while True:
        c, _ = ls.accept()
        n += 1
        write_file(a.count_file, "%d\n" % n)
        threading.Thread(target=serve_one, args=(c, a.mode),
                         daemon=True).start()


def slow_client(a):
    host, port = a.slow_client
    ip = socket.getaddrinfo(host, None)[0][4][0]
    if not (ip.startswith("127.") or ip == "::1"):
        sys.exit("badpeer: refusing a non-loopback address: %s" % host)
    if a.data_hex is not None:
        data = bytes.fromhex(a.data_hex)
    elif a.data is not None:
        data = a.data.encode()
    else:
        data = ("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " +
                "s" * 100000).encode()
    s = socket.create_connection((host, int(port)))
    start = time.monotonic()
    sent = 0
    while True:
        if time.monotonic() - start >= a.give_up:
            print("still open after %d bytes in %.0f s" %
                  (sent, time.monotonic() - start))
            return 1
        if sent < len(data):
            try:
                s.sendall(data[sent:sent + 1])
            except OSError:
                break
            sent += 1
        # A close by the server shows as a readable end of stream.
        s.settimeout(a.rate)
        try:
            if s.recv(65536) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    print("closed after %d bytes in %.0f s" % (sent, time.monotonic() - start))
    return 0


def main():
    p = argparse.ArgumentParser(description="misbehaving peer for tests")
    p.add_argument("--mode", choices=["malformed", "endless", "huge-header",
                                      "close-head", "close-body"])
    p.add_argument("--port-file")
    p.add_argument("--count-file")
    p.add_argument("--slow-client", nargs=2, metavar=("HOST", "PORT"))
    p.add_argument("--data")
    p.add_argument("--data-hex")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--give-up", type=float, default=20.0)
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.slow_client:
        return slow_client(a)
    if not a.mode:
        p.error("--mode or --slow-client is needed")
    server(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
