"""HTTP/1.1 protocol behaviour of srv seen from real clients (http.client, raw sockets, curl):
keep-alive, pipelining order, chunked request bodies, Expect: 100-continue, HEAD, Content-Length
and chunked responses, Date/Server headers, Connection: close, HTTP/1.0 and big bodies. Every test
runs in both process and base mode. The raw-socket helpers here are shared by the other HTTP
test files (test_http_errors, test_static, test_dispatch, test_worker_crash, test_nginx)."""
import email.utils
import os
import shutil
import socket
import subprocess
import tempfile
import time

from srvtest import SLOW, Server, run, running

MODES = ["process", "base"]


# ---------------------------------------------------------------- raw HTTP helpers

class Resp:
    def __init__(self, version, status, reason, headers, body, chunked):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # list of (lower-case name, value)
        self.body, self.chunked = body, chunked

    def h(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def __repr__(self):
        return f"<Resp {self.version} {self.status} {self.headers} {self.body[:80]!r}>"


class Closed(Exception):
    """The server closed the connection before a full response."""


class RawConn:
    """A client socket that reads HTTP responses exactly (no normalisation)."""

    def __init__(self, port=None, timeout=10, path=None, host="127.0.0.1", sock=None):
        if sock is not None:
            self.s = sock
        elif path is not None:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout * SLOW)
            self.s.connect(path)
        else:
            self.s = socket.create_connection((host, port), timeout=timeout * SLOW)
        self.s.settimeout(timeout * SLOW)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        b = self.s.recv(1 << 20)
        if not b:
            raise Closed(f"connection closed (pending {self.buf[:200]!r})")
        self.buf += b

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method="GET"):
        """One response; skips nothing (a 100 Continue is returned as itself)."""
        status_line = self.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), status_line
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            ln = self.line()
            if not ln:
                break
            k, v = ln.decode("latin-1").split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
        r = Resp(version, status, reason, headers, b"", False)
        if status < 200 or status in (204, 304) or method == "HEAD":
            return r
        te = r.h("transfer-encoding")
        cl = r.h("content-length")
        if te is not None:
            assert te.lower() == "chunked", te
            r.chunked = True
            body = []
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():  # trailers
                        pass
                    break
                body.append(self.exact(size))
                assert self.exact(2) == b"\r\n"
            r.body = b"".join(body)
        elif cl is not None:
            r.body = self.exact(int(cl))
        else:  # close-delimited
            try:
                while True:
                    self._fill()
            except Closed:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def request(self, method, path, headers=None, body=b"", version="HTTP/1.1"):
        self.send(build(method, path, headers, body, version))
        return self.read_response(method)

    def closed_by_peer(self, timeout=10):
        """True once the server has closed (EOF or reset) within timeout; False if it stays open."""
        self.s.settimeout(timeout * SLOW)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True
                self.buf += b
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def build(method, path, headers=None, body=b"", version="HTTP/1.1"):
    hs = {"Host": "test"}
    hs.update(headers or {})
    if body and "Content-Length" not in hs and "Transfer-Encoding" not in hs:
        hs["Content-Length"] = str(len(body))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs.items())
    return head.encode("latin-1") + b"\r\n" + body


def chunked(body, size=1000):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def server(mode, name, **kw):
    srv_opts = dict(kw.pop("server", {}))
    srv_opts["mode"] = mode
    return Server(name=f"{name}-{mode}", server=srv_opts, **kw)


def curl(*args, timeout=30):
    r = subprocess.run(["curl", "-sS", "--max-time", str(int(timeout * SLOW)), *args],
                       capture_output=True, timeout=timeout * SLOW + 10)
    return r


def each_mode(fn):
    """Run fn(mode) in process then base mode, naming the mode on failure."""
    def wrapper():
        for m in MODES:
            try:
                fn(m)
            except Exception as e:
                raise AssertionError(f"[mode={m}] {e!r}") from e
    wrapper.__name__ = fn.__name__
    return wrapper


# ---------------------------------------------------------------- tests

@each_mode
def test_keepalive_reuses_one_connection(mode):
    with running(server(mode, "ka")) as s:
        before = s.info()["accepted"]
        with RawConn(s.port()) as c:
            for i in range(20):
                r = c.request("GET", "/")
                assert r.status == 200 and r.body == b"Hello, World!", r
                assert r.h("connection", "keep-alive").lower() == "keep-alive", r
        # http.client keeps one socket too
        hc = s.conn()
        for _ in range(5):
            hc.request("GET", "/")
            r = hc.getresponse()
            assert r.status == 200 and r.read() == b"Hello, World!"
        hc.close()
        if mode == "process":
            assert s.info()["accepted"] - before == 2, s.info()


@each_mode
def test_pipelining_in_request_order(mode):
    # dispatch_mode 1 spreads the pipelined requests over both workers, so a slow first request
    # finishes after the fast ones: the responses must still come back in request order.
    with running(server(mode, "pipe", server={"dispatch_mode": 1})) as s:
        reqs = [("GET", "/sleep?ms=300", b""), ("GET", "/", b""), ("POST", "/echo", b"one"),
                ("GET", "/stream?chunks=2", b""), ("HEAD", "/", b""), ("POST", "/echo", b"two"),
                ("GET", "/sleep?ms=50", b""), ("GET", "/big?bytes=70000", b"")]
        with RawConn(s.port()) as c:
            c.send(b"".join(build(m, p, body=b) for m, p, b in reqs))
            got = [c.read_response(m) for m, _, _ in reqs]
            assert [r.status for r in got] == [200] * len(reqs), got
            assert got[0].body == b"slept 300 ms\n", got[0]
            assert got[1].body == b"Hello, World!"
            assert got[2].body == b"one"
            assert got[3].body == b"chunk 0\nchunk 1\n" and got[3].chunked
            assert got[4].body == b"" and got[4].h("content-length") == "13"
            assert got[5].body == b"two"
            assert got[6].body == b"slept 50 ms\n"
            assert got[7].body == b"x" * 70000
            # still usable afterwards
            assert c.request("GET", "/").status == 200
        # a burst of 100 pipelined requests in one write: 100 answers, in order
        with RawConn(s.port()) as c:
            c.send(b"".join(build("POST", "/echo", body=b"req-%03d" % i) for i in range(100)))
            for i in range(100):
                r = c.read_response()
                assert r.status == 200 and r.body == b"req-%03d" % i, (i, r)


@each_mode
def test_chunked_request_body(mode):
    with running(server(mode, "chunkreq")) as s:
        body = bytes(range(256)) * 300
        with RawConn(s.port()) as c:
            r = c.request("POST", "/echo", {"Transfer-Encoding": "chunked",
                                            "Content-Type": "application/x-test"},
                          chunked(body, 4093))
            assert r.status == 200 and r.body == body, r
            assert r.h("content-type") == "application/x-test"
            # chunk extensions and trailers are legal
            r = c.request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                          b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
            assert r.status == 200 and r.body == b"abcde", r
            # the same connection keeps working after chunked bodies
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"Hello, World!"
            # the chunked body sent in small separate writes (incremental parsing)
            c.send(build("POST", "/echo", {"Transfer-Encoding": "chunked"}))
            for piece in [b"5\r", b"\nhel", b"lo\r\n", b"6\r\n wor", b"ld\r\n0\r", b"\n\r\n"]:
                c.send(piece)
                time.sleep(0.01)
            r = c.read_response()
            assert r.status == 200 and r.body == b"hello world", r
        # a Content-Length body in small separate writes
        with RawConn(s.port()) as c:
            c.send(build("POST", "/echo", {"Content-Length": "20"}))
            for i in range(0, 20, 3):
                c.send(b"0123456789abcdefghij"[i:i + 3])
                time.sleep(0.01)
            r = c.read_response()
            assert r.status == 200 and r.body == b"0123456789abcdefghij", r
        # http.client's own chunked encoder
        hc = s.conn()
        hc.request("POST", "/echo", body=iter([b"ab", b"cd", b"ef"]), encode_chunked=True,
                   headers={"Transfer-Encoding": "chunked"})
        r = hc.getresponse()
        assert r.status == 200 and r.read() == b"abcdef"
        hc.close()


@each_mode
def test_expect_100_continue(mode):
    with running(server(mode, "expect")) as s:
        body = b"y" * 200000
        with RawConn(s.port()) as c:
            c.send(build("POST", "/echo", {"Expect": "100-continue",
                                           "Content-Length": str(len(body))}))
            r = c.read_response()
            assert r.status == 100, r
            c.send(body)
            r = c.read_response()
            assert r.status == 200 and r.body == body, r
            r = c.request("GET", "/")
            assert r.status == 200
        tmp = tempfile.mkdtemp(prefix="srvtest-expect-")
        try:
            path = os.path.join(tmp, "body.bin")
            with open(path, "wb") as f:
                f.write(os.urandom(300000))
            r = curl("-v", "-H", "Expect: 100-continue", "--data-binary", "@" + path,
                     "-H", "Content-Type: application/octet-stream",
                     f"http://127.0.0.1:{s.port()}/echo")
            assert r.returncode == 0, r.stderr
            with open(path, "rb") as f:
                assert r.stdout == f.read()
            assert b"HTTP/1.1 100 Continue" in r.stderr, r.stderr[-2000:]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@each_mode
def test_head(mode):
    with running(server(mode, "head")) as s:
        with RawConn(s.port()) as c:
            r = c.request("HEAD", "/")
            assert r.status == 200 and r.h("content-length") == "13", r
            r = c.request("HEAD", "/big?bytes=100000")
            assert r.status == 200, r
            # no body bytes may follow a HEAD response: the next response parses cleanly
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"Hello, World!", r
            r = c.request("HEAD", "/stream?chunks=3")
            assert r.status == 200, r
            r = c.request("GET", "/worker")
            assert r.status == 200 and r.body.startswith(b'{"id":'), r
            assert c.buf == b""


@each_mode
def test_content_length_and_chunked_responses(mode):
    with running(server(mode, "resp")) as s:
        with RawConn(s.port()) as c:
            r = c.request("GET", "/")
            assert r.h("content-length") == "13" and r.h("transfer-encoding") is None, r
            r = c.request("GET", "/stream?chunks=5")
            assert r.chunked and r.h("content-length") is None, r
            assert r.body == b"".join(b"chunk %d\n" % i for i in range(5)), r
            r = c.request("GET", "/stream?chunks=0")
            assert r.status == 200 and r.body == b"", r
            r = c.request("GET", "/headers", {"X-Test": "abc"})
            assert b"X-Test: abc\n" in r.body, r


@each_mode
def test_date_and_server_headers(mode):
    with running(server(mode, "date")) as s:
        with RawConn(s.port()) as c:
            for path in ["/", "/stream?chunks=1", "/nonexistent"]:
                r = c.request("GET", path)
                assert r.h("server"), r
                d = r.h("date")
                assert d and d.endswith(" GMT"), r
                t = email.utils.parsedate_to_datetime(d).timestamp()
                assert abs(t - time.time()) < 5 * SLOW, (d, time.time())
            # errors from the protocol layer carry them too
            c.send(b"BAD REQUEST LINE\r\n\r\n")
            r = c.read_response()
            assert r.status == 400 and r.h("date") and r.h("server"), r


@each_mode
def test_connection_close(mode):
    with running(server(mode, "close")) as s:
        with RawConn(s.port()) as c:
            r = c.request("GET", "/", {"Connection": "close"})
            assert r.status == 200 and r.body == b"Hello, World!", r
            assert r.h("connection", "").lower() == "close", r
            assert c.closed_by_peer(5), "server kept the connection open after Connection: close"
            assert c.buf == b""
        # a pipelined request after Connection: close is not answered
        with RawConn(s.port()) as c:
            c.send(build("GET", "/", {"Connection": "close"}) + build("GET", "/worker"))
            r = c.read_response()
            assert r.status == 200
            assert c.closed_by_peer(5) and c.buf == b"", c.buf
        r = curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Connection: close",
                 f"http://127.0.0.1:{s.port()}/")
        assert r.stdout == b"200", r


@each_mode
def test_http10(mode):
    with running(server(mode, "http10")) as s:
        with RawConn(s.port()) as c:
            r = c.request("GET", "/", version="HTTP/1.0")
            assert r.status == 200 and r.body == b"Hello, World!", r
            assert c.closed_by_peer(5), "HTTP/1.0 without keep-alive must be closed"
        # chunked is not HTTP/1.0: a streamed body must come without chunk framing
        with RawConn(s.port()) as c:
            r = c.request("GET", "/stream?chunks=3", version="HTTP/1.0")
            assert r.status == 200 and not r.chunked, r
            assert r.body == b"chunk 0\nchunk 1\nchunk 2\n", r
        # HTTP/1.0 with an explicit keep-alive may keep the connection; if it does it says so
        with RawConn(s.port()) as c:
            r = c.request("GET", "/", {"Connection": "keep-alive"}, version="HTTP/1.0")
            assert r.status == 200 and r.body == b"Hello, World!", r
            if r.h("connection", "").lower() == "keep-alive":
                r = c.request("GET", "/", {"Connection": "keep-alive"}, version="HTTP/1.0")
                assert r.status == 200, r
            else:
                assert c.closed_by_peer(5)
        r = curl("--http1.0", "-i", f"http://127.0.0.1:{s.port()}/")
        assert r.returncode == 0 and r.stdout.endswith(b"Hello, World!"), r
        assert r.stdout.startswith(b"HTTP/1."), r.stdout
        r = curl("--http1.0", f"http://127.0.0.1:{s.port()}/big?bytes=200000")
        assert r.returncode == 0 and r.stdout == b"x" * 200000, (r.returncode, r.stderr)


@each_mode
def test_big_bodies(mode):
    with running(server(mode, "big", server={"package_max_length": 4 << 20})) as s:
        bad = []
        for n in [0, 1, 65536, 65537, 1 << 20, 5 << 20]:
            # two on one connection: the second proves the first left it in sync
            with RawConn(s.port(), timeout=30) as c:
                for _ in range(2):
                    try:
                        r = c.request("GET", f"/big?bytes={n}")
                        if r.status != 200 or r.body != b"x" * n:
                            bad.append((n, r.status, len(r.body)))
                            break
                    except Closed as e:
                        bad.append((n, "closed", str(e)[:60]))
                        break
        r = curl(f"http://127.0.0.1:{s.port()}/big?bytes={5 << 20}")
        if r.returncode != 0 or len(r.stdout) != 5 << 20:
            bad.append(("curl 5 MiB", r.returncode, len(r.stdout)))
        with RawConn(s.port(), timeout=30) as c:
            body = os.urandom(1 << 20)
            r = c.request("POST", "/echo", {"Content-Type": "application/octet-stream"}, body)
            assert r.status == 200 and r.body == body, (r.status, len(r.body))
            r = c.request("POST", "/echo", {"Transfer-Encoding": "chunked"}, chunked(body, 65536))
            assert r.status == 200 and r.body == body, (r.status, len(r.body))
        assert not bad, f"GET /big failures (bytes, status, got): {bad}"


@each_mode
def test_unix_socket_listener(mode):
    tmp = tempfile.mkdtemp(prefix="srvtest-unix-")
    path = os.path.join(tmp, "srv.sock")
    try:
        with running(server(mode, "unix", listeners=[{"name": "u", "type": "http",
                                                      "path": path}])) as s:
            with RawConn(path=path) as c:
                for _ in range(3):
                    r = c.request("GET", "/")
                    assert r.status == 200 and r.body == b"Hello, World!", r
                r = c.request("POST", "/echo", body=b"unix")
                assert r.body == b"unix"
            r = curl("--unix-socket", path, "http://localhost/worker")
            assert r.returncode == 0 and r.stdout.startswith(b'{"id":'), r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run([test_keepalive_reuses_one_connection, test_pipelining_in_request_order,
         test_chunked_request_body, test_expect_100_continue, test_head,
         test_content_length_and_chunked_responses, test_date_and_server_headers,
         test_connection_close, test_http10, test_big_bodies, test_unix_socket_listener])
