"""Regression tests for issue 11 (HTTP/1.1 conformance), seen from a raw-socket client:
1. Transfer-Encoding on an HTTP/1.0 request is faulty framing: 400 and close (RFC 9112 6.1).
2. An invalid Host value, a second Host line or a missing Host in HTTP/1.1 is 400 (RFC 9112 3.2).
3. A path too long for the static handler to name a file goes to the app, like any path without a
   file; a file whose path is longer than 3,968 bytes is still served.
4. A request line over http_header_max is 414 (header fields stay 431); HTTP/1.x with x > 1 is
   served as HTTP/1.1, other major versions are 505.
Runs in process and base mode."""
import os
import shutil
import tempfile

from srvtest import run, running
from test_http import RawConn, build, each_mode, server

NOT_FOUND = b"not found\n"  # the demo app's 404 body: proof that the app answered


def answer_and_close(s, data, status, what):
    """Send data on a fresh connection: exactly one response `status`, Connection: close, then
    the server closes with nothing more sent."""
    with RawConn(s.port()) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, (what, status, r)
        assert r.h("connection", "").lower() == "close", (what, r)
        assert c.closed_by_peer(5), f"{what!r}: connection not closed after {r.status}"
        assert c.buf == b"", (what, c.buf[:200])
        return r


def still_works(s):
    with RawConn(s.port()) as c:
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == b"Hello, World!", r


@each_mode
def test_issue11_te_http10_400(mode):
    with running(server(mode, "i11te")) as s:
        cases = [
            b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: gzip\r\n\r\nabc",
        ]
        for data in cases:
            answer_and_close(s, data, 400, data)
        # a kept HTTP/1.0 connection: the good request is answered, the bad one ends it
        with RawConn(s.port()) as c:
            c.send(build("POST", "/echo", {"Connection": "keep-alive"}, b"one", "HTTP/1.0") +
                   b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            r = c.read_response()
            assert r.status == 200 and r.body == b"one", r
            r = c.read_response()
            assert r.status == 400, r
            assert c.closed_by_peer(5)
        # HTTP/1.1 chunked and HTTP/1.0 Content-Length bodies are unaffected
        with RawConn(s.port()) as c:
            r = c.request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                          b"3\r\nabc\r\n0\r\n\r\n")
            assert r.status == 200 and r.body == b"abc", r
            r = c.request("POST", "/echo", {"Connection": "keep-alive"}, b"xyz", "HTTP/1.0")
            assert r.status == 200 and r.body == b"xyz", r
        still_works(s)


BAD_HOSTS = ["a b", "a/b", "x:99999", "[::1", "x:65536", "x:8o", "a@b", "[::1]x", "[1.2.3.4]",
             "%zz", "a?b"]
GOOD_HOSTS = ["example.com", "example.com:8080", "127.0.0.1:65535", "[::1]", "[::1]:0",
              "[2001:db8::1]:443", "x:00080"]


@each_mode
def test_issue11_invalid_host_400(mode):
    with running(server(mode, "i11host")) as s:
        for h in BAD_HOSTS:
            for v in ["1.1", "1.0"]:
                data = f"GET / HTTP/{v}\r\nHost: {h}\r\n\r\n".encode()
                answer_and_close(s, data, 400, data)
        answer_and_close(s, b"GET / HTTP/1.1\r\n\r\n", 400, "missing Host")
        answer_and_close(s, b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "two Hosts")
        answer_and_close(s, b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400,
                         "two Hosts in 1.0")
        with RawConn(s.port()) as c:
            for h in GOOD_HOSTS:
                r = c.request("GET", "/", {"Host": h})
                assert r.status == 200 and r.body == b"Hello, World!", (h, r)
            # HTTP/1.0 without Host is fine
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            assert r.status == 200, r
        still_works(s)


class LongTree:
    """A document root with one file whose relative path is `length` bytes long (more than the
    3,968 the static handler used to take, less than PATH_MAX), made through directory fds so
    no absolute path passes PATH_MAX."""

    def __init__(self, length=4000):
        self.top = tempfile.mkdtemp(prefix="srvtest-i11-")
        self.root = os.path.join(self.top, "www")
        os.mkdir(self.root)
        with open(os.path.join(self.root, "short.txt"), "wb") as f:
            f.write(b"short\n")
        comps = [f"{i:02d}" + "d" * 198 for i in range(19)]
        used = sum(len(c) + 1 for c in comps)
        name = "f" * (length - used - 4) + ".txt"
        self.rel = "/".join(comps + [name])
        assert len(self.rel) == length, len(self.rel)
        self.data = b"deep file\n"
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for comp in comps:
                os.mkdir(comp, dir_fd=fd)
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(ffd, self.data)
            os.close(ffd)
        finally:
            os.close(fd)

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)


@each_mode
def test_issue11_long_static_path_reaches_app(mode):
    tree = LongTree()
    try:
        s = server(mode, "i11static", server={"http_header_max": 32768},
                   listeners=[{"name": "web", "type": "http", "document_root": tree.root}])
        with running(s):
            with RawConn(s.port()) as c:
                assert c.request("GET", "/short.txt").body == b"short\n"
                # no such file, too long for any file path: the app answers, not "400 bad path"
                for n in [3968, 4000, 4096, 5000, 20000]:
                    r = c.request("GET", "/" + "a" * n)
                    assert r.status == 404 and r.body == NOT_FOUND, (n, r)
                    r = c.request("GET", "/" + "b/" * (n // 2) + "x?q=1")
                    assert r.status == 404 and r.body == NOT_FOUND, (n, r)
                # percent-encoded: 3 bytes on the wire for each byte of the path
                r = c.request("GET", "/" + "%61" * 2000)
                assert r.status == 404 and r.body == NOT_FOUND, r
                # a real file whose path is longer than the old limit is still served
                r = c.request("GET", "/" + tree.rel)
                assert r.status == 200 and r.body == tree.data, r
                assert r.h("content-type", "").startswith("text/plain"), r
                r = c.request("HEAD", "/" + tree.rel)
                assert r.status == 200 and r.h("content-length") == str(len(tree.data)), r
            # beyond the header limit the parser answers 414 before the static handler runs
            answer_and_close(s, build("GET", "/" + "a" * 40000), 414, "target over the limit")
            with RawConn(s.port()) as c:
                r = c.request("GET", "/worker")
                assert r.status == 200 and r.body.startswith(b'{"id":'), r
    finally:
        tree.cleanup()


@each_mode
def test_issue11_long_target_414(mode):
    with running(server(mode, "i11uri", server={"http_header_max": 4096})) as s:
        r = answer_and_close(s, build("GET", "/" + "p" * 8000), 414, "long target")
        assert r.reason == "URI Too Long", r
        answer_and_close(s, build("GET", "/?q=" + "p" * 4100), 414, "long query")
        # a request line that almost fills the limit, then a header: 431 (header fields)
        answer_and_close(s, build("GET", "/" + "p" * 3900, {"X-Pad": "v" * 300}), 431,
                         "headers after a long line")
        answer_and_close(s, build("GET", "/", {"X-Big": "a" * 8000}), 431, "one big header")
        # just under the limit is still served (by the app)
        with RawConn(s.port()) as c:
            r = c.request("GET", "/" + "p" * 3900)
            assert r.status == 404 and r.body == NOT_FOUND, r
        still_works(s)


@each_mode
def test_issue11_http_1x_as_1_1(mode):
    with running(server(mode, "i11ver")) as s:
        with RawConn(s.port()) as c:
            for v in ["HTTP/1.2", "HTTP/1.9"]:
                r = c.request("GET", "/", version=v)
                assert r.status == 200 and r.body == b"Hello, World!", (v, r)
                assert r.version == "HTTP/1.1", r
                # persistent by default, as in 1.1
                assert r.h("connection", "keep-alive").lower() == "keep-alive", r
            r = c.request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                          b"2\r\nhi\r\n0\r\n\r\n", version="HTTP/1.2")
            assert r.status == 200 and r.body == b"hi", r
            # a chunked response, which 1.0 would not get
            r = c.request("GET", "/stream?chunks=2", version="HTTP/1.3")
            assert r.status == 200 and r.chunked, r
        # as 1.1, Host is required
        answer_and_close(s, b"GET / HTTP/1.2\r\n\r\n", 400, "1.2 without Host")
        # other major versions
        for v in [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9"]:
            answer_and_close(s, b"GET / " + v + b"\r\nHost: x\r\n\r\n", 505, v)
        answer_and_close(s, b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400, "garbled version")
        still_works(s)


if __name__ == "__main__":
    run([test_issue11_te_http10_400, test_issue11_invalid_host_400,
         test_issue11_long_static_path_reaches_app, test_issue11_long_target_414,
         test_issue11_http_1x_as_1_1])
