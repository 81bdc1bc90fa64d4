#!/usr/bin/env python3
"""origin.py -- a local origin server for pw's tests (python3 stdlib only).

HTTP/1.1 with keep-alive, on loopback only (127.0.0.1, or ::1 with --ipv6).

  origin.py [--port N] [--port-file FILE] [--tls CERT KEY] [--ipv6] [-v]
  origin.py --blackhole [--port N] [--port-file FILE] [--ipv6]
  origin.py --refuse [--port-file FILE] [--ipv6]
  origin.py --gen N

--port 0 (the default) lets the kernel pick a free port; --port-file writes
the bound port (atomically, once listening) so scripts need not race.
--blackhole accepts connections, reads and discards, never answers.
--refuse holds a bound, non-listening socket: connecting to it is refused,
and no one else can take the port meanwhile.
--gen N writes the first N bytes of the /bytes pattern to stdout.

Endpoints (any method; HEAD answers headers only):
  /echo          JSON: method, path, query, args, headers, header_list,
                 body (text, null when not UTF-8), body_b64, body_length,
                 client, client_port, server_port, tls, http_version
  /bytes/N       N bytes of a fixed pattern, streamed with Content-Length
                 ?chunked=1  chunked transfer encoding instead
                 ?abort=K    send K bytes of the body, then close
                 ?stall=K    send K bytes of the body, then never send more
  /status/N      status N, small body "status N\\n"; query adds headers
  /slow/MS       sleeps MS milliseconds, then "slow MS\\n"
  /hang          reads the request, never answers
  /gzip          JSON {"gzipped": ...}, gzip-encoded when Accept-Encoding
                 allows gzip
  /redirect/N    N redirects (302, or ?status=301|303|307|308; ?absolute=1
                 for an absolute Location; ?delay=MS sleeps before each)
                 then /redirect/0 answers as /echo
  /headers       each query pair NAME=VALUE becomes a response header
                 (%XX is that byte: Latin-1); body is JSON of the pairs
  /ip            the client address (the peer of this TCP connection), "\\n"
  /hex/HEX       exactly the bytes HEX spells, as application/octet-stream

Nothing is written to stdout unless -v (then one line per request).
"""

import argparse
import base64
import gzip
import hashlib
import ipaddress
import json
import os
import selectors
import signal
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

VERBOSE = False

# The /bytes pattern: a fixed pseudo-random block whose length is prime, so
# that a dropped, repeated or reordered chunk changes the digest.
PERIOD = 65521
CHUNK = 65536


def _pattern():
    out = bytearray()
    i = 0
    while len(out) < PERIOD:
        out += hashlib.sha256(b"pw-origin-%d" % i).digest()
        i += 1
    del out[PERIOD:]
    return bytes(out)


PATTERN = _pattern()
DOUBLE = memoryview(PATTERN + PATTERN)


def pattern_slice(offset, n):
    """n <= PERIOD bytes of the pattern starting at absolute offset."""
    o = offset % PERIOD
    return DOUBLE[o:o + n]


def gen(n, out):
    off = 0
    while off < n:
        k = min(PERIOD, n - off)
        out.write(pattern_slice(off, k))
        off += k
    out.flush()


GZIP_TEXT = ("pw origin gzip body. " * 40).strip() + "\n"

# Response headers a /headers query may not set: they would break framing.
FRAMING = {"content-length", "transfer-encoding", "connection"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def version_string(self):
        return "pw-origin"

    # -- plumbing -------------------------------------------------------

    def setup(self):
        ctx = self.server.ssl_ctx
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.ssl_ctx is not None:
                try:
                    self.connection.close()
                except OSError:
                    pass

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stdout.write("%s %s\n" % (self.client_address[0], fmt % args))
            sys.stdout.flush()

    def __getattr__(self, name):
        # Every method goes to one dispatcher: do_GET, do_POST, do_FOO...
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def read_body(self, keep=True):
        """The request body (Content-Length or chunked); None when kept is
        False (then it is read and discarded), and its length."""
        chunks = [] if keep else None
        total = 0
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += self._read_n(size, chunks)
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            n = int(self.headers.get("Content-Length") or 0)
            total = self._read_n(n, chunks)
        return (b"".join(chunks) if keep else None), total

    def _read_n(self, n, chunks):
        left = n
        while left > 0:
            b = self.rfile.read(min(left, CHUNK))
            if not b:
                raise ConnectionError("eof in body")
            if chunks is not None:
                chunks.append(b)
            left -= len(b)
        return n

    def reply(self, status, body=b"", ctype="text/plain", headers=()):
        """A whole response in one write (no Nagle/delayed-ACK stalls)."""
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        if "content-type" not in names and ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        nobody = status < 200 or status in (204, 304)
        if not nobody:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers_buffered()
        if self.command != "HEAD" and not nobody:
            self._headers_buffer.append(body)
        self.flush_headers()

    def end_headers_buffered(self):
        self._headers_buffer.append(b"\r\n")

    # -- dispatch -------------------------------------------------------

    def dispatch(self):
        u = urlsplit(self.path)
        self.url = u
        self.args = parse_qsl(u.query, keep_blank_values=True)
        parts = u.path.split("/")
        route = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else None
        try:
            if route == "echo" and arg is None:
                return self.do_echo()
            if route == "hang" and arg is None:
                return self.do_hang()
            # The rest do not need the request body, but keep-alive does.
            self.read_body(keep=False)
            if route == "bytes" and arg is not None:
                return self.do_bytes(self.number(arg))
            if route == "status" and arg is not None:
                return self.do_status(self.number(arg))
            if route == "slow" and arg is not None:
                return self.do_slow(self.number(arg))
            if route == "redirect" and arg is not None:
                return self.do_redirect(self.number(arg))
            if route == "gzip" and arg is None:
                return self.do_gzip()
            if route == "headers" and arg is None:
                return self.do_headers()
            if route == "hex" and arg is not None:
                return self.do_hex(arg)
            if route == "ip" and arg is None:
                return self.reply(200, self.client_address[0] + "\n")
            if u.path == "/":
                return self.reply(200, "pw origin\n")
            return self.reply(404, "not found\n")
        except BadRequest as e:
            self.close_connection = True
            return self.reply(400, "bad request: %s\n" % e)

    def number(self, s):
        if not s.isdigit() or len(s) > 18:
            raise BadRequest("not a number: %r" % s)
        return int(s)

    def arg(self, name, default=None):
        for k, v in self.args:
            if k == name:
                return v
        return default

    # -- endpoints ------------------------------------------------------

    def echo_doc(self, body):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        headers = {}
        for k, v in self.headers.items():
            headers[k] = headers[k] + ", " + v if k in headers else v
        args = {}
        for k, v in self.args:
            args.setdefault(k, []).append(v)
        return {
            "method": self.command,
            "path": self.url.path,
            "query": self.url.query,
            "args": args,
            "headers": headers,
            "header_list": [[k, v] for k, v in self.headers.items()],
            "body": text,
            "body_b64": base64.b64encode(body).decode(),
            "body_length": len(body),
            "client": self.client_address[0],
            "client_port": self.client_address[1],
            "server_port": self.server.server_address[1],
            "tls": self.server.ssl_ctx is not None,
            "http_version": self.request_version,
        }

    def do_echo(self, body=None):
        if body is None:
            body, _ = self.read_body()
        doc = json.dumps(self.echo_doc(body), indent=2, sort_keys=True)
        self.reply(200, doc + "\n", "application/json")

    def do_hang(self):
        self.read_body(keep=False)
        self.close_connection = True
        conn = self.connection
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def do_bytes(self, n):
        chunked = self.arg("chunked") == "1"
        abort = self.arg("abort")
        stall = self.arg("stall")
        stop = n
        if abort is not None:
            stop = min(n, self.number(abort))
        if stall is not None:
            stop = min(n, self.number(stall))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        w = self.wfile
        off = 0
        while off < stop:
            k = min(CHUNK, stop - off, PERIOD)
            data = pattern_slice(off, k)
            if chunked:
                w.write(b"".join((b"%x\r\n" % k, data, b"\r\n")))
            else:
                w.write(data)
            off += k
        if stop < n:
            self.close_connection = True
            if stall is not None and stop == self.number(stall):
                self.do_hang_after_response()
            return  # the connection closes short of the body
        if chunked:
            w.write(b"0\r\n\r\n")

    def do_hang_after_response(self):
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def do_status(self, n):
        if not 100 <= n <= 999:
            raise BadRequest("status out of range: %d" % n)
        if n < 200:
            # An interim response alone would leave the client waiting.
            raise BadRequest("1xx status is not a final answer")
        hdrs = [(k, v) for k, v in self.args if k.lower() not in FRAMING]
        self.reply(n, "status %d\n" % n, headers=hdrs)

    def do_slow(self, ms):
        time.sleep(ms / 1000.0)
        self.reply(200, "slow %d\n" % ms)

    def do_redirect(self, n):
        if n == 0:
            return self.do_echo(body=b"")
        status = self.number(self.arg("status", "302"))
        if status not in (301, 302, 303, 307, 308):
            raise BadRequest("not a redirect status: %d" % status)
        time.sleep(self.number(self.arg("delay", "0")) / 1000.0)
        loc = "/redirect/%d" % (n - 1)
        if self.url.query:
            loc += "?" + self.url.query
        if self.arg("absolute") == "1":
            host = self.headers.get("Host") or "%s:%d" % (
                "127.0.0.1", self.server.server_address[1])
            scheme = "https" if self.server.ssl_ctx is not None else "http"
            loc = "%s://%s%s" % (scheme, host, loc)
        self.reply(status, "redirect to %s\n" % loc, headers=[("Location", loc)])

    def accepts_gzip(self):
        gz = star = None
        for item in self.headers.get("Accept-Encoding", "").split(","):
            fields = [f.strip() for f in item.split(";")]
            name = fields[0].lower()
            q = 1.0
            for f in fields[1:]:
                if f.lower().startswith("q="):
                    try:
                        q = float(f[2:])
                    except ValueError:
                        q = 0.0
            if name in ("gzip", "x-gzip"):
                gz = q
            elif name == "*":
                star = q
        if gz is not None:
            return gz > 0
        return star is not None and star > 0

    def do_gzip(self):
        use = self.accepts_gzip()
        doc = json.dumps({"gzipped": use, "method": self.command,
                          "text": GZIP_TEXT}, indent=2, sort_keys=True) + "\n"
        body = doc.encode()
        hdrs = [("Vary", "Accept-Encoding")]
        if use:
            body = gzip.compress(body, mtime=0)
            hdrs.append(("Content-Encoding", "gzip"))
        self.reply(200, body, "application/json", headers=hdrs)

    def do_hex(self, arg):
        try:
            body = bytes.fromhex(arg)
        except ValueError:
            raise BadRequest("not hex: %r" % arg)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_headers(self):
        # Latin-1, so that %XX is one byte of the header as it is.
        args = parse_qsl(urlsplit(self.path).query, keep_blank_values=True,
                         encoding="latin-1")
        hdrs = [(k, v) for k, v in args if k.lower() not in FRAMING]
        doc = json.dumps([[k, v] for k, v in hdrs], indent=2) + "\n"
        ctype = None if any(k.lower() == "content-type" for k, _ in hdrs) \
            else "application/json"
        self.reply(200, doc, ctype, headers=hdrs)


class BadRequest(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    ssl_ctx = None

    def handle_error(self, request, client_address):
        if VERBOSE:
            super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def write_port_file(path, port):
    if not path:
        return
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def blackhole(host, port, family, port_file):
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(256)
    ls.setblocking(False)
    write_port_file(port_file, ls.getsockname()[1])
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()


def refuse(host, family, port_file):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))  # bound, never listening: connections are refused
    write_port_file(port_file, s.getsockname()[1])
    while True:
        signal.pause()


def main():
    global VERBOSE
    p = argparse.ArgumentParser(description="local origin server for tests")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--ipv6", action="store_true")
    p.add_argument("--host", help="loopback address to bind "
                   "(default 127.0.0.1, or ::1 with --ipv6)")
    p.add_argument("--blackhole", action="store_true")
    p.add_argument("--refuse", action="store_true")
    p.add_argument("--gen", type=int, metavar="N")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    VERBOSE = a.verbose

    if a.gen is not None:
        gen(a.gen, sys.stdout.buffer)
        return 0

    host = a.host or ("::1" if a.ipv6 else "127.0.0.1")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        p.error("--host must be an IP address: %s" % host)
    if not ip.is_loopback:
        p.error("refusing to bind a non-loopback address: %s" % host)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    if a.blackhole:
        blackhole(host, a.port, family, a.port_file)
        return 0
    if a.refuse:
        refuse(host, family, a.port_file)
        return 0

    cls = Server6 if family == socket.AF_INET6 else Server
    srv = cls((host, a.port), Handler)
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        ctx.set_alpn_protocols(["http/1.1"])
        srv.ssl_ctx = ctx
    write_port_file(a.port_file, srv.server_address[1])
    if VERBOSE:
        print("listening on %s port %d%s" % (host, srv.server_address[1],
                                             " (tls)" if a.tls else ""))
        sys.stdout.flush()
    srv.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
